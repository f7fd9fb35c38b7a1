//! ONNX import and calibration on hostile bytes: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use opal_quant::{build_graph, onnx::import_graph, BuildConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = import_graph(data) {
        let n = g.input_len();
        if n <= 1 << 16 {
            let _ = build_graph(&g, &[vec![0.5; n]], &BuildConfig::default());
        }
    }
});
