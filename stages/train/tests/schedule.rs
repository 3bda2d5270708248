//! Learning-rate schedules against their formulas at sample steps.

use kenning_train::Schedule;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn constant_schedule_warms_up_then_holds() {
    let s = Schedule::Constant { warmup_steps: 10 };
    assert!(close(s.lr(0, 100, 1.0), 0.1));
    assert!(close(s.lr(4, 100, 1.0), 0.5));
    assert!(close(s.lr(9, 100, 1.0), 1.0));
    assert!(close(s.lr(99, 100, 1.0), 1.0));
}

#[test]
fn cosine_schedule_matches_formula() {
    let s = Schedule::Cosine {
        warmup_steps: 10,
        min_lr_ratio: 0.1,
    };
    let (total, peak) = (110, 2.0);
    assert!(close(s.lr(10, total, peak), 2.0));
    assert!(close(s.lr(109, total, peak), 0.2));
    // Halfway through the 99 post-warmup steps the cosine term is 0.5 of the way down.
    let step = 10 + 99 / 2;
    let progress = (step - 10) as f64 / 99.0;
    let expected = 0.2 + 1.8 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    assert!(close(s.lr(step, total, peak), expected));
    assert!(close(s.lr(200, total, peak), 0.2));
}

#[test]
fn wsd_schedule_decays_linearly() {
    let s = Schedule::WarmupStableDecay {
        warmup_steps: 5,
        decay_fraction: 0.2,
        min_lr_ratio: 0.0,
    };
    let (total, peak) = (100, 1.0);
    assert!(close(s.lr(2, total, peak), 0.6));
    assert!(close(s.lr(79, total, peak), 1.0));
    assert!(close(s.lr(80, total, peak), 1.0 - 1.0 / 20.0));
    assert!(close(s.lr(89, total, peak), 0.5));
    assert!(close(s.lr(99, total, peak), 0.0));
}

#[test]
fn multi_power_law_schedule_decays_by_power() {
    let s = Schedule::MultiPowerLaw {
        warmup_steps: 0,
        decay_fraction: 0.5,
        decay_exponent: 2.0,
        min_lr_ratio: 0.1,
    };
    let (total, peak) = (100, 1.0);
    assert!(close(s.lr(0, total, peak), 1.0));
    assert!(close(s.lr(49, total, peak), 1.0));
    // Step 74 is 25 of 50 decay steps in: 0.1 + 0.9 * (1 - 0.5)^2.
    assert!(close(s.lr(74, total, peak), 0.1 + 0.9 * 0.25));
    assert!(close(s.lr(99, total, peak), 0.1));
}

#[test]
fn schedule_reads_from_toml() {
    let s: Schedule = toml::from_str("kind = \"warmup_stable_decay\"\nwarmup_steps = 3\n").unwrap();
    assert_eq!(
        s,
        Schedule::WarmupStableDecay {
            warmup_steps: 3,
            decay_fraction: 0.2,
            min_lr_ratio: 0.1
        }
    );
    let unknown = toml::from_str::<Schedule>("kind = \"cosine\"\nwarmup = 3\n");
    assert!(unknown.is_err());
}
