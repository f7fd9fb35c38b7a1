//! Accuracy of the demo model (`models/digits`) in the canonical quantized mode against float.
//!
//! ```sh
//! cargo run --release -p opal-quant --example digits_accuracy [-- --write models/digits/model.opalq]
//! ```
//!
//! Quantizes `model.onnx` with max-abs calibration on the training rows of `dataset.csv` (row
//! `i` is a test row when `i % 4 == 3`, the split of `models/digits/build.py`), then reports on
//! the 449 test rows: float accuracy (the ONNX graph evaluated in f32, logits argmax),
//! canonical accuracy (integer logits argmax) and the rate at which the two labels agree; plus
//! the canonical executor's time per input. `--write FILE` also writes the `.opalq` model file.

use std::time::Instant;

use opal_quant::{argmax, onnx, quantize_onnx, BuildConfig, ExecOptions, ExecPath, QuantModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/digits");
    let args: Vec<String> = std::env::args().collect();
    let write = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1).cloned());
    let onnx_bytes = std::fs::read(dir.join("model.onnx"))?;
    let csv = std::fs::read_to_string(dir.join("dataset.csv"))?;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().ok_or("empty csv")?.split(',').collect();
    let label_col = header
        .iter()
        .position(|h| *h == "label")
        .ok_or("no label column")?;
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (i, line) in lines.enumerate() {
        let vals: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()?;
        let label = vals[label_col] as usize;
        let x: Vec<f32> = vals
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != label_col)
            .map(|(_, v)| *v)
            .collect();
        if i % 4 == 3 {
            test.push((x, label));
        } else {
            train.push(x);
        }
    }
    let cfg = BuildConfig::default();
    let model = quantize_onnx(&onnx_bytes, &train, &cfg)?;
    let float = onnx::import_graph(&onnx_bytes)?;
    let fargmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i)
            .unwrap_or(0)
    };
    let (mut f_ok, mut q_ok, mut agree) = (0usize, 0usize, 0usize);
    let mut inputs = Vec::with_capacity(test.len());
    for (x, label) in &test {
        let fl = fargmax(&float.forward(x));
        let q = model.input_from_f32(x)?;
        let ql = argmax(&model.run(&q)?).unwrap_or(0);
        f_ok += (fl == *label) as usize;
        q_ok += (ql == *label) as usize;
        agree += (fl == ql) as usize;
        inputs.push(q);
    }
    let n = test.len();
    let time = |opts: ExecOptions| -> Result<f64, opal_quant::QuantError> {
        let reps = 20;
        let t = Instant::now();
        for _ in 0..reps {
            for q in &inputs {
                std::hint::black_box(model.run_with(q, opts)?);
            }
        }
        Ok(t.elapsed().as_secs_f64() / (reps * inputs.len()) as f64 * 1e6)
    };
    let auto_us = time(ExecOptions {
        threads: 1,
        path: ExecPath::Auto,
    })?;
    let portable_us = time(ExecOptions {
        threads: 1,
        path: ExecPath::Portable,
    })?;
    let file = model.to_file_bytes();
    let back = QuantModel::from_file_bytes(&file)?;
    assert_eq!(back, model);
    println!(
        "digits: {} calibration (training) rows, {} test rows; act_bits {} weight_bits {}",
        train.len(),
        n,
        cfg.act_bits,
        cfg.weight_bits
    );
    println!(
        "float accuracy     {:.4} ({f_ok}/{n})\ncanonical accuracy {:.4} ({q_ok}/{n})\nlabel agreement    {:.4} ({agree}/{n})",
        f_ok as f64 / n as f64,
        q_ok as f64 / n as f64,
        agree as f64 / n as f64
    );
    println!(
        "canonical run, 1 thread: {auto_us:.2} us/input (auto kernel), {portable_us:.2} us/input (portable)"
    );
    println!(
        "model file: {} bytes, model_id {}, file blake3 {}",
        file.len(),
        hex(&model.model_id()),
        blake3::hash(&file).to_hex()
    );
    if let Some(path) = write {
        std::fs::write(&path, &file)?;
        println!("wrote {path}");
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
