//! The tokenizer built from the GGUF metadata gives llama.cpp's ids.

mod common;

use kenning_local::gguf::GgufFile;
use kenning_local::tokenizer::GgufTokenizer;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    parse_special: bool,
    ids: Vec<u32>,
}

#[test]
fn matches_llama_cpp_ids_on_the_reference_strings() {
    let path = common::shared().join("datasets/smollm2_tokenizer_reference.json");
    let reference: Reference = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    assert_eq!(reference.cases.len(), 30);

    let file = GgufFile::open(&common::model_path()).unwrap();
    let tokenizer = GgufTokenizer::from_gguf(&file).unwrap();

    let mut mismatches = Vec::new();
    for case in &reference.cases {
        let ids = if case.parse_special {
            tokenizer.encode_markup(&case.text).unwrap()
        } else {
            tokenizer.encode_text(&case.text).unwrap()
        };
        if ids != case.ids {
            mismatches.push(format!("{:?}: got {ids:?}, want {:?}", case.text, case.ids));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn encode_text_keeps_control_token_names_plain() {
    let file = GgufFile::open(&common::model_path()).unwrap();
    let tokenizer = GgufTokenizer::from_gguf(&file).unwrap();

    let plain = tokenizer.encode_text("<|im_end|>").unwrap();
    let markup = tokenizer.encode_markup("<|im_end|>").unwrap();
    assert_eq!(markup, vec![2]);
    assert!(plain.len() > 1, "{plain:?}");
    assert!(!plain.contains(&2), "{plain:?}");
}

#[test]
fn decoding_round_trips_unicode() {
    let file = GgufFile::open(&common::model_path()).unwrap();
    let tokenizer = GgufTokenizer::from_gguf(&file).unwrap();
    let text = "Ünïcödé — 東京 🚀 1999\n\ttabs";
    let ids = tokenizer.encode_text(text).unwrap();
    assert_eq!(tokenizer.decode(&ids).unwrap(), text);
}
