//! The model file format: round trips, and clear errors for every kind of bad file.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hush_ml::{
    Dataset, ForestParams, Knn, LeafKnn, Matrix, MlError, Model, ModelFile, ModelHeader,
    RandomForest,
};

fn data() -> Dataset {
    let rows: Vec<Vec<f32>> = (0..60)
        .map(|i| vec![(i % 3) as f32 + (i as f32) * 0.001, (i % 5) as f32])
        .collect();
    Dataset {
        x: Matrix::from_rows(&rows).unwrap(),
        y: (0..60).map(|i| (i % 3) as u32).collect(),
        classes: vec!["a".into(), "b".into(), "c".into()],
        groups: (0..60).collect(),
        feature_names: vec!["f0".into(), "f1".into()],
    }
}

fn file(model: Model) -> ModelFile {
    ModelFile {
        header: ModelHeader {
            format: hush_ml::model::FORMAT.into(),
            version: hush_ml::model::VERSION,
            feature_set: "flow-stats".into(),
            feature_names: vec!["f0".into(), "f1".into()],
            classes: vec!["a".into(), "b".into(), "c".into()],
            trained_on: "test".into(),
        },
        model,
    }
}

#[test]
fn round_trip_and_same_seed_same_bytes() {
    let d = data();
    let p = ForestParams {
        n_trees: 20,
        seed: 4,
        ..ForestParams::default()
    };
    let f = file(Model::RandomForest(RandomForest::fit(&d, &p).unwrap()));
    let again = file(Model::RandomForest(RandomForest::fit(&d, &p).unwrap()));
    assert_eq!(
        f.to_bytes().unwrap(),
        again.to_bytes().unwrap(),
        "same seed, same model bytes"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    f.save(&path).unwrap();
    let back = ModelFile::load(&path, Some("flow-stats")).unwrap();
    assert_eq!(back, f);
    let Model::RandomForest(rf) = back.model else {
        panic!("kind")
    };
    assert_eq!(rf.predict(&d.x).unwrap(), d.y);
    let k = file(Model::Knn(Knn::fit(&d, 3).unwrap()));
    assert_eq!(
        ModelFile::from_bytes(&k.to_bytes().unwrap(), None).unwrap(),
        k
    );
}

#[test]
fn bad_files_say_what_is_wrong() {
    let f = file(Model::Knn(Knn::fit(&data(), 1).unwrap()));
    let bytes = f.to_bytes().unwrap();
    let err = ModelFile::from_bytes(&bytes, Some("iot-sentinel")).unwrap_err();
    assert_eq!(
        err,
        MlError::FeatureSet {
            expected: "iot-sentinel".into(),
            found: "flow-stats".into()
        }
    );
    let err = ModelFile::from_bytes(&bytes[..bytes.len() / 2], None).unwrap_err();
    assert!(err.to_string().contains("cut short"), "{err}");
    let err = ModelFile::from_bytes(b"\x89PNG garbage", None).unwrap_err();
    assert!(err.to_string().contains("not a hush model"), "{err}");
    let v2 =
        String::from_utf8(bytes.clone())
            .unwrap()
            .replacen("\"version\":1", "\"version\":2", 1);
    let err = ModelFile::from_bytes(v2.as_bytes(), None).unwrap_err();
    assert!(err.to_string().contains("version 2"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.json");
    std::fs::write(&path, &bytes[..100]).unwrap();
    let err = ModelFile::load(&path, None).unwrap_err();
    assert!(err.to_string().contains("cut.json"), "{err}");
}

/// A seeded stream of numbers for the mutations (SplitMix64).
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// `bytes` damaged in one of the ways a disk, a network or an attacker damages a file.
    fn mutate(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut b = bytes.to_vec();
        let at = self.below(b.len());
        match self.below(5) {
            0 => b[at] = b" {}[],:\"-.0123456789eEaz"[self.below(24)],
            1 => b.truncate(at),
            2 => {
                let end = (at + 1 + self.below(16)).min(b.len());
                b.drain(at..end);
            }
            3 => {
                let end = (at + 1 + self.below(64)).min(b.len());
                let span = b[at..end].to_vec();
                b.splice(at..at, span);
            }
            _ => {
                // A number in the file replaced by one at the edge of its type.
                const EDGES: [&str; 9] = [
                    "0",
                    "1",
                    "-1",
                    "2",
                    "255",
                    "4294967295",
                    "18446744073709551615",
                    "1e38",
                    "-2147483648",
                ];
                let digits: Vec<usize> = (0..b.len()).filter(|&i| b[i].is_ascii_digit()).collect();
                if let Some(&start) = digits.get(self.below(digits.len())) {
                    let mut end = start;
                    while end < b.len() && b[end].is_ascii_digit() {
                        end += 1;
                    }
                    let edge = EDGES[self.below(EDGES.len())].as_bytes().to_vec();
                    b.splice(start..end, edge);
                }
            }
        }
        b
    }
}

/// Predicts with whatever model a file held, on rows as wide as its header says.
fn predict_any(model: &Model, cols: usize) -> Result<(), MlError> {
    let x = Matrix::new(3, cols, vec![0.5; 3 * cols])?;
    match model {
        Model::RandomForest(f) => {
            f.predict_proba(&x)?;
            let x = Matrix::new(2, f.n_features(), vec![1e9; 2 * f.n_features()])?;
            f.predict_proba(&x)?;
            f.apply(&x)?;
        }
        Model::Knn(k) => {
            k.predict(&x)?;
        }
        Model::LeafKnn(k) => {
            k.predict_proba(&x)?;
        }
        Model::Ensemble { members } => {
            for m in members {
                predict_any(&m.model, m.columns.min(64))?;
            }
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
    Ok(())
}

#[test]
fn thousands_of_damaged_model_files_are_errors_never_panics() {
    let d = data();
    let p = ForestParams {
        n_trees: 5,
        seed: 1,
        ..ForestParams::default()
    };
    let forest = RandomForest::fit(&d, &p).unwrap();
    let models = [
        ("forest", Model::RandomForest(forest.clone())),
        ("knn", Model::Knn(Knn::fit(&d, 3).unwrap())),
        ("leaf-knn", Model::LeafKnn(LeafKnn::fit(&d, &p, 3).unwrap())),
        (
            "ensemble",
            Model::Ensemble {
                members: vec![
                    hush_ml::EnsembleMember {
                        feature_set: "flow-stats".into(),
                        first_column: 0,
                        columns: 2,
                        weight: 1.0,
                        model: Model::RandomForest(forest),
                    },
                    hush_ml::EnsembleMember {
                        feature_set: "flow-stats".into(),
                        first_column: 0,
                        columns: 2,
                        weight: 0.5,
                        model: Model::Knn(Knn::fit(&d, 1).unwrap()),
                    },
                ],
            },
        ),
    ];
    for (name, model) in models {
        let bytes = file(model).to_bytes().unwrap();
        let back = ModelFile::from_bytes(&bytes, None).unwrap();
        predict_any(&back.model, 2).unwrap();
        let mut m = Mutator(name.len() as u64);
        let (mut accepted, mut refused) = (0, 0);
        for i in 0..3000 {
            let bad = m.mutate(&bytes);
            let run = std::panic::catch_unwind(|| match ModelFile::from_bytes(&bad, None) {
                Ok(f) => {
                    // Whatever loads must predict (or refuse the rows) without panicking.
                    let _ = predict_any(&f.model, f.header.feature_names.len().min(64));
                    true
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    false
                }
            });
            match run {
                Ok(true) => accepted += 1,
                Ok(false) => refused += 1,
                Err(_) => panic!(
                    "{name}: mutant {i} panicked: {}",
                    String::from_utf8_lossy(&bad)
                ),
            }
        }
        // Most damage is caught; what loads is a model that still works.
        assert!(
            refused > accepted,
            "{name}: {refused} refused, {accepted} loaded"
        );
    }
}

#[test]
fn a_forest_whose_walk_would_loop_or_run_off_its_nodes_is_refused() {
    let d = data();
    let f = file(Model::RandomForest(
        RandomForest::fit(
            &d,
            &ForestParams {
                n_trees: 1,
                ..ForestParams::default()
            },
        )
        .unwrap(),
    ));
    let json: serde_json::Value = serde_json::from_slice(&f.to_bytes().unwrap()).unwrap();
    let nodes = &json["model"]["trees"][0]["nodes"];
    assert!(
        nodes[0]["feature"].as_i64().unwrap() >= 0,
        "the root splits"
    );
    for (field, value, want) in [
        ("left", 0, "children come after their parent"),
        ("right", 1_000_000, "children come after their parent"),
        ("feature", 7, "splits on feature 7 of 2"),
    ] {
        let mut bad = json.clone();
        bad["model"]["trees"][0]["nodes"][0][field] = value.into();
        let err = ModelFile::from_bytes(&serde_json::to_vec(&bad).unwrap(), None).unwrap_err();
        assert!(err.to_string().contains(want), "{field}: {err}");
    }
}
