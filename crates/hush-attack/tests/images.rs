//! ITEMTK's image attack end to end on real captures. The shared captures last minutes and
//! ITEMTK's windows hours, so these tests join each device's captures into long traces (as the
//! README says) and use shorter windows of 1 s bins; the window is a parameter.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hush_attack::eval::DefenseFn;
use hush_attack::images::join_captures;
use hush_attack::{Attack, EvalOptions, Mode, evaluate};
use hush_trace::dataset::{Dataset, LoadOptions, load_dir};

const DEVICES: [&str; 5] = [
    "Aria",
    "D-LinkCam",
    "HueBridge",
    "Lightify",
    "TP-LinkPlugHS110",
];

/// Five devices, each device's captures joined into four long traces.
fn joined() -> Option<Dataset> {
    let dir = hush_trace::data::shared_data("iot-sentinel")?;
    let mut ds = load_dir(&dir, &LoadOptions::default()).unwrap();
    ds.traces.retain(|t| DEVICES.contains(&t.label.as_str()));
    ds.labels.retain(|l| DEVICES.contains(&l.as_str()));
    Some(join_captures(&ds, 4, 60.0))
}

fn attack() -> Attack {
    let mut a = Attack::by_name("image-cnn:bin_s=1,window=240,stride=60,size=16").unwrap();
    a.set_max_epochs(15);
    a
}

#[test]
fn the_image_attack_learns_from_joined_captures() {
    let Some(ds) = joined() else { return };
    assert_eq!(ds.traces.len(), 4 * DEVICES.len());
    let r = evaluate(
        &ds,
        &attack(),
        &EvalOptions {
            folds: 4,
            ..EvalOptions::default()
        },
    )
    .unwrap();
    assert!(r.window.examples >= 100, "{} windows", r.window.examples);
    assert!(
        r.window.accuracy > 2.5 * r.window.chance_majority,
        "accuracy {:.3} vs chance {:.3}",
        r.window.accuracy,
        r.window.chance_majority
    );
}

#[test]
fn trains_saves_and_predicts_and_adapts_to_a_defense() {
    let Some(ds) = joined() else { return };
    let a = attack();
    let (data, _) = a.dataset_of(&ds).unwrap();
    let model = a.fit(&data, "test").unwrap();
    assert_eq!(model.header.feature_set, a.spec());
    let bytes = model.to_bytes().unwrap();
    let loaded = hush_ml::ModelFile::from_bytes(&bytes, None).unwrap();
    // A model file names its windows: the attack it was trained as reads it back.
    let again = Attack::by_name(&loaded.header.feature_set).unwrap();
    assert_eq!(again.kind, a.kind);
    let t = &ds.traces[0].trace;
    let p = again.predict(&loaded, t).unwrap();
    assert!(!p.is_empty());
    assert_eq!(p, a.predict(&model, t).unwrap());
    // Other image options are other features.
    let other = Attack::by_name("image-cnn:bin_s=1,window=120,size=16").unwrap();
    assert!(other.predict(&model, t).is_err());

    // Adaptive mode: the attacker trains on defended traffic. Padding every packet to the MTU
    // leaves volume images that still carry timing, so the adaptive attacker still learns.
    let spec: hush_defense::DefenseSpec = "pad-mtu".parse().unwrap();
    let defense = |t: &hush_trace::Trace, seed: u64| {
        hush_defense::defend(t, &spec, seed, &hush_defense::NetworkModel::default())
            .map(|d| d.to_trace(t))
            .map_err(|e| e.to_string())
    };
    let r = evaluate(
        &ds,
        &a,
        &EvalOptions {
            folds: 4,
            defense: Some(&defense as DefenseFn<'_>),
            mode: Mode::Adaptive,
            ..EvalOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.defended, Some(Mode::Adaptive));
    assert!(
        r.window.accuracy > 2.0 * r.window.chance_majority,
        "adaptive under pad-mtu: {:.3} vs chance {:.3}",
        r.window.accuracy,
        r.window.chance_majority
    );
}

#[test]
fn windows_longer_than_the_traces_say_so() {
    let Some(ds) = joined() else { return };
    let err = evaluate(
        &ds,
        &Attack::by_name("image-cnn").unwrap(),
        &EvalOptions {
            folds: 4,
            ..EvalOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("--join"), "{err}");
    assert!(Attack::by_name("image-cnn:window=x").is_err());
    assert!(Attack::by_name("flow-stats:size=3").is_err());
}
