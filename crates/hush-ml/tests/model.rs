//! The model file format: round trips, and clear errors for every kind of bad file.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hush_ml::{
    Dataset, ForestParams, Knn, Matrix, MlError, Model, ModelFile, ModelHeader, RandomForest,
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
