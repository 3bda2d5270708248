//! The multi-power-law fit recovers known parameters from synthetic loss curves and predicts
//! a schedule it was not fitted on.

use kenning_train::Schedule;
use kenning_train::mpl::{LossCurve, MultiPowerLaw, fit, optimize_decay};

const TRUTH: MultiPowerLaw = MultiPowerLaw {
    l0: 2.5,
    a: 0.8,
    alpha: 0.45,
    b: 400.0,
    c: 1.5,
    beta: 0.55,
    gamma: 0.6,
};

fn curve(schedule: &Schedule, total: u64, peak: f64) -> LossCurve {
    let rates = schedule.rates(total, peak);
    let steps: Vec<usize> = (0..total as usize)
        .step_by(8)
        .chain([total as usize - 1])
        .collect();
    let losses = TRUTH.predict(&rates, schedule.warmup_steps() as usize, &steps);
    LossCurve {
        rates,
        warmup_steps: schedule.warmup_steps() as usize,
        points: steps.into_iter().zip(losses).collect(),
    }
}

#[test]
fn fit_recovers_known_parameters() {
    let (total, peak) = (400, 3e-3);
    let curves = [
        curve(&Schedule::Constant { warmup_steps: 20 }, total, peak),
        curve(
            &Schedule::Cosine {
                warmup_steps: 20,
                min_lr_ratio: 0.0,
            },
            total,
            peak,
        ),
        curve(
            &Schedule::WarmupStableDecay {
                warmup_steps: 20,
                decay_fraction: 0.3,
                min_lr_ratio: 0.0,
            },
            total,
            peak,
        ),
    ];
    let fitted = fit(&curves).unwrap();
    assert!(fitted.rmse < 1e-6, "rmse {}", fitted.rmse);
    let law = fitted.law;
    let pairs = [
        ("l0", law.l0, TRUTH.l0),
        ("a", law.a, TRUTH.a),
        ("alpha", law.alpha, TRUTH.alpha),
        ("b", law.b, TRUTH.b),
        ("c", law.c, TRUTH.c),
        ("beta", law.beta, TRUTH.beta),
        ("gamma", law.gamma, TRUTH.gamma),
    ];
    for (name, got, want) in pairs {
        assert!(
            (got - want).abs() / want < 0.05,
            "{name}: fitted {got}, true {want} ({law:?})"
        );
    }

    let unseen = Schedule::MultiPowerLaw {
        warmup_steps: 20,
        decay_fraction: 0.15,
        decay_exponent: 2.0,
        min_lr_ratio: 0.05,
    };
    let predicted = law.predict_final(&unseen, total, peak);
    let actual = TRUTH.predict_final(&unseen, total, peak);
    assert!((predicted - actual).abs() < 1e-3, "{predicted} vs {actual}");
}

#[test]
fn fit_rejects_too_few_points() {
    let rates = vec![1e-3; 10];
    let curve = LossCurve {
        rates,
        warmup_steps: 0,
        points: vec![(1, 3.0), (5, 2.9)],
    };
    assert!(fit(&[curve]).is_err());
}

#[test]
fn decay_beats_constant_under_the_law() {
    let (schedule, loss) = optimize_decay(&TRUTH, 400, 3e-3, 20, 0.0);
    let constant = TRUTH.predict_final(&Schedule::Constant { warmup_steps: 20 }, 400, 3e-3);
    assert!(
        loss < constant,
        "{schedule:?} predicts {loss}, constant {constant}"
    );
    assert!(matches!(schedule, Schedule::MultiPowerLaw { .. }));
}
