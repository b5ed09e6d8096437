//! A damaged or hostile model file: `ModelFile::from_bytes` must refuse it or load a model that
//! predicts (or refuses the rows) without panicking, looping or allocating far beyond its size.
#![no_main]

use hush_ml::{Matrix, Model, ModelFile};
use libfuzzer_sys::fuzz_target;

fn predict(model: &Model, cols: usize) {
    let cols = cols.min(256);
    let Ok(x) = Matrix::new(2, cols, vec![0.5; 2 * cols]) else {
        return;
    };
    match model {
        Model::RandomForest(f) => {
            let _ = f.predict_proba(&x);
            let _ = f.apply(&x);
        }
        Model::Knn(k) => {
            let _ = k.predict(&x);
        }
        Model::LeafKnn(k) => {
            let _ = k.predict_proba(&x);
        }
        Model::Ensemble { members } => {
            for m in members {
                predict(&m.model, m.columns);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = ModelFile::from_bytes(data, None) {
        predict(&f.model, f.header.feature_names.len());
        if let Model::RandomForest(forest) = &f.model {
            predict(&f.model, forest.n_features());
        }
    }
});
