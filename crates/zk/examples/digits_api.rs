//! The integration API on the demo model file (`models/digits/model.opalq`): setup, key size,
//! prove with progress, verify, on the first test rows of `dataset.csv`.
//!
//! ```sh
//! cargo run --release -p opal-zk --example digits_api
//! ```

use std::time::Instant;

use opal_quant::QuantModel;
use opal_zk::api;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/digits");
    let model = QuantModel::from_file_bytes(&std::fs::read(dir.join("model.opalq"))?)?;
    let csv = std::fs::read_to_string(dir.join("dataset.csv"))?;
    let rows: Vec<Vec<f32>> = csv
        .lines()
        .skip(1)
        .enumerate()
        .filter(|(i, _)| i % 4 == 3)
        .take(8)
        .map(|(_, l)| {
            l.split(',')
                .take(64)
                .map(|v| v.parse().unwrap_or(0.0))
                .collect()
        })
        .collect();
    let t = Instant::now();
    let setup = api::setup(&model)?;
    let setup_s = t.elapsed().as_secs_f64();
    let vk = api::verifying_key(&setup);
    let vk_bytes = vk.to_bytes();
    let t = Instant::now();
    let vk2 = api::VerifyingKey::from_bytes(&vk_bytes)?;
    let vk_decode_s = t.elapsed().as_secs_f64();
    let setup_bytes = setup.to_bytes();
    let t = Instant::now();
    let _ = api::Setup::from_bytes(&setup_bytes)?;
    let setup_load_s = t.elapsed().as_secs_f64();
    let (mut prove_s, mut verify_s, mut proof_len, mut steps) = (0f64, 0f64, 0, 0);
    for r in &rows {
        let x = model.input_from_f32(r)?;
        let t = Instant::now();
        let (y, proof) = api::prove(&model, &setup, &x, &mut |_| steps += 1)?;
        prove_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        api::verify(&vk2, &x, &y, &proof)?;
        verify_s += t.elapsed().as_secs_f64();
        proof_len = proof.len();
    }
    let n = rows.len() as f64;
    println!(
        "digits via opal_zk::api: setup {:.1} ms, setup bytes {} (reload {:.1} ms), verifying key {} bytes (decode + range-proof check {:.1} ms), id {}",
        setup_s * 1e3,
        setup_bytes.len(),
        setup_load_s * 1e3,
        vk_bytes.len(),
        vk_decode_s * 1e3,
        vk.id().iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    println!(
        "prove {:.2} ms/input, verify {:.2} ms/input, proof {} bytes, soundness {:.1} bits, {} progress calls/proof ({} inputs)",
        prove_s / n * 1e3,
        verify_s / n * 1e3,
        proof_len,
        vk.soundness_bits()?,
        steps / rows.len(),
        rows.len()
    );
    Ok(())
}
