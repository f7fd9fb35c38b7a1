//! `opal zk prove` / `opal zk verify`: the scripted interface (docs/zk.md, "Command line").
//!
//! `prove --model model.onnx --input input.json --out DIR` imports the ONNX graph, quantizes it
//! (scales calibrated on the given input, or on `--calib`), commits to the weights once
//! (registration) and keeps the result in DIR; later runs with the same ONNX file reuse it. It
//! then proves one inference and writes `statement.json` (quantized input and output) and
//! `proof.bin`. `verify DIR` checks `proof.bin` against `registered.bin` (weights stripped, weight
//! commitments) and `statement.json`, for the registered-model id the caller names
//! (`--model-id`, required: the id the caller trusts, e.g. the registry's); a directory for
//! another model is refused with [`IdMismatch`] (the binary exits with [`EXIT_ID_MISMATCH`]).
//! Both print one JSON object with timings and sizes as the last line of stdout; `verify` exits
//! non-zero unless the proof is valid.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use opal_quant::{build_graph, onnx::import_graph, quantize_input, BuildConfig, QuantModel};
use serde_json::{json, Value};

use crate::proof::{self, ProverModel, RegisteredModel};

/// Largest file the verifier reads (registered model, statement, proof): checked before reading.
pub const MAX_FILE: u64 = 256 << 20;
/// Largest ONNX / input file the prover reads.
pub const MAX_INPUT_FILE: u64 = 1 << 30;

/// Exit status of `opal zk verify` when the directory is not for the `--model-id` it was asked
/// to verify (1: any other failure, an invalid proof included; 2: usage).
pub const EXIT_ID_MISMATCH: i32 = 4;

/// `verify`: the directory's registered model, or the id its statement claims, is not the one
/// the caller named. Returned inside the `anyhow::Error` (downcast to tell it apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMismatch {
    /// What did not match: `"registered.bin"` or `"statement.json"`.
    pub what: &'static str,
    pub expected: String,
    pub got: String,
}

impl std::fmt::Display for IdMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "model id mismatch: {} is for registered model {}, not the expected {}",
            self.what, self.got, self.expected
        )
    }
}

impl std::error::Error for IdMismatch {}

#[derive(Subcommand, Debug)]
pub enum ZkCmd {
    /// Prove `output = model(input)` for an ONNX model; setup (quantization, weight commitment)
    /// is made on first use and kept in DIR.
    Prove(ProveArgs),
    /// Verify the proof in DIR for the registered model --model-id; exit status 0 only for a
    /// valid proof of that model, 4 if DIR is for another model, 1 for any other failure.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct ProveArgs {
    /// ONNX model (MatMul/Gemm, Conv, Add, Relu, Flatten/Reshape; a final Softmax/ArgMax head is
    /// dropped and the logits are proven).
    #[arg(long)]
    pub model: PathBuf,
    /// Input as JSON: {"input_data": [[x0, x1, ...]]} (EZKL's format; floats, flattened), or
    /// {"shape": [...], "data": [...]}. Only the first row is proven.
    #[arg(long)]
    pub input: PathBuf,
    /// Directory for the setup (model.bin, registered.bin, setup.json) and the proof
    /// (statement.json, proof.bin).
    #[arg(long)]
    pub out: PathBuf,
    /// Calibration inputs (same JSON format, one or more rows) used at setup to choose the
    /// quantization scales [default: the input itself].
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// Redo the setup even if DIR holds one for this model.
    #[arg(long)]
    pub resetup: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Directory written by `opal zk prove`.
    pub dir: PathBuf,
    /// The registered-model id (64 hex digits) the proof must be for, e.g. the one stored in
    /// the registry or `registered_model_id` in DIR/setup.json from a setup you made. Required:
    /// a proof is only meaningful for a model you name. Another model's directory exits 4.
    #[arg(long, value_name = "HEX")]
    pub model_id: String,
}

/// Runs a subcommand. `Ok(())` means success (for `verify`: a valid proof); errors carry the
/// reason, after the JSON line has been printed.
pub fn run(cmd: ZkCmd) -> Result<()> {
    match cmd {
        ZkCmd::Prove(a) => prove_cmd(&a),
        ZkCmd::Verify(a) => verify_cmd(&a),
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), in bytes; 0 where unavailable.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time consumed so far by the calling thread, in seconds (`CLOCK_THREAD_CPUTIME_ID`);
/// `None` where unavailable. The prover and verifier are single-threaded, so on a loaded machine
/// this is the fair measure beside wall time.
pub fn thread_cpu_s() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

fn cpu_since(start: Option<f64>) -> Option<f64> {
    Some(thread_cpu_s()? - start?)
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > max {
        bail!(
            "{} is {len} bytes, more than the limit {max}",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Rows of `{"input_data": [[...], ...]}` as f32 vectors (nested arrays are flattened per row).
pub fn read_inputs(path: &Path) -> Result<Vec<Vec<f32>>> {
    let v: Value = serde_json::from_slice(&read_bounded(path, MAX_INPUT_FILE)?)
        .with_context(|| format!("parsing {}", path.display()))?;
    // EZKL's {"input_data": [[..]]}, a single tensor {"shape": [..], "data": [..]}, or
    // {"inputs": [[..], ..]} (several rows, e.g. for calibration).
    let key = ["input_data", "data", "inputs"]
        .into_iter()
        .find(|k| v[*k].is_array())
        .ok_or_else(|| {
            anyhow!(
                "{}: expected an \"input_data\", \"data\" or \"inputs\" array",
                path.display()
            )
        })?;
    let rows = v[key].as_array().ok_or_else(|| anyhow!("not an array"))?;
    fn flatten(v: &Value, out: &mut Vec<f32>) -> Result<()> {
        match v {
            Value::Array(a) => a.iter().try_for_each(|x| flatten(x, out)),
            Value::Number(n) => {
                let x = n.as_f64().ok_or_else(|| anyhow!("bad number"))? as f32;
                if !x.is_finite() {
                    bail!("input value {n} is not finite as f32");
                }
                out.push(x);
                Ok(())
            }
            _ => bail!("input_data must contain numbers"),
        }
    }
    let rows: Vec<Vec<f32>> = if rows.iter().all(|r| r.is_number()) {
        let mut x = Vec::new();
        flatten(&v[key], &mut x)?;
        vec![x]
    } else {
        rows.iter()
            .map(|r| {
                let mut x = Vec::new();
                flatten(r, &mut x).map(|_| x)
            })
            .collect::<Result<_>>()?
    };
    if rows.is_empty() {
        bail!("{}: input_data is empty", path.display());
    }
    Ok(rows)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Setup {
    model: QuantModel,
    prover: ProverModel,
    reg: RegisteredModel,
    info: Value,
}

fn load_setup(dir: &Path, onnx_hash: &str) -> Result<Option<Setup>> {
    let info_path = dir.join("setup.json");
    if !info_path.exists() || !dir.join("registration.bin").exists() {
        return Ok(None);
    }
    let info: Value = serde_json::from_slice(&read_bounded(&info_path, MAX_FILE)?)?;
    if info["onnx_blake3"].as_str() != Some(onnx_hash)
        || info["protocol"].as_str() != Some(proof::PROTOCOL_NAME)
    {
        return Ok(None);
    }
    let model: QuantModel = borsh::from_slice(&read_bounded(&dir.join("model.bin"), MAX_FILE)?)
        .context("decoding model.bin")?;
    let reg = RegisteredModel::from_bytes(&read_bounded(&dir.join("registered.bin"), MAX_FILE)?)
        .context("decoding registered.bin")?;
    // Rebuild the prover's commitment data from the weights; it must reproduce the stored
    // commitments (a corrupted or mismatched setup is redone, never used).
    let (prover, reg2) = proof::register(&model)?;
    if reg2 != reg {
        return Ok(None);
    }
    Ok(Some(Setup {
        model,
        prover,
        reg,
        info,
    }))
}

fn make_setup(a: &ProveArgs, onnx: &[u8], onnx_hash: &str, x: &[f32]) -> Result<Setup> {
    let graph = import_graph(onnx).with_context(|| format!("importing {}", a.model.display()))?;
    let calib = match &a.calib {
        Some(p) => read_inputs(p)?,
        None => vec![x.to_vec()],
    };
    let model =
        build_graph(&graph, &calib, &BuildConfig::default()).context("quantizing the model")?;
    let (prover, reg) = proof::register(&model)?;
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join("model.bin"), borsh::to_vec(&model)?)?;
    std::fs::write(a.out.join("registered.bin"), reg.to_bytes())?;
    std::fs::write(
        a.out.join("registration.bin"),
        proof::prove_registration(&prover, &reg)?,
    )?;
    let info = json!({
        "protocol": proof::PROTOCOL_NAME,
        "onnx": a.model.display().to_string(),
        "onnx_blake3": onnx_hash,
        "registered_model_id": hex(&reg.id()),
        "model_id": hex(&model.model_id()),
        "input_shape": graph.input_shape,
        "input_scale": model.input_scale,
        "output_scale": model.output_scale,
        "calibration": a.calib.as_ref().map_or("the first prove input".to_string(), |p| p.display().to_string()),
        "calibration_rows": calib.len(),
        "ignored_tail_ops": graph.ignored_tail,
        "layers": model.layers.len(),
    });
    std::fs::write(a.out.join("setup.json"), serde_json::to_vec_pretty(&info)?)?;
    Ok(Setup {
        model,
        prover,
        reg,
        info,
    })
}

fn prove_cmd(a: &ProveArgs) -> Result<()> {
    let onnx = read_bounded(&a.model, MAX_INPUT_FILE)?;
    let onnx_hash = blake3::hash(&onnx).to_hex().to_string();
    let rows = read_inputs(&a.input)?;
    let x = &rows[0];
    let t = Instant::now();
    let existing = if a.resetup {
        None
    } else {
        load_setup(&a.out, &onnx_hash)?
    };
    let load_s = t.elapsed().as_secs_f64();
    let reused = existing.is_some();
    let c = thread_cpu_s();
    let t = Instant::now();
    let setup = match existing {
        Some(s) => s,
        None => make_setup(a, &onnx, &onnx_hash, x)?,
    };
    let setup_s = if reused {
        0.0
    } else {
        t.elapsed().as_secs_f64()
    };
    let setup_cpu_s = if reused { Some(0.0) } else { cpu_since(c) };
    if x.len() != setup.model.input_len as usize {
        bail!(
            "input has {} values, the model expects {}",
            x.len(),
            setup.model.input_len
        );
    }
    let q = quantize_input(x, setup.model.input_scale, setup.model.input_bits);
    let c = thread_cpu_s();
    let t = Instant::now();
    let (output, bytes) = proof::prove(&setup.prover, &setup.reg, &q)?;
    let prove_s = t.elapsed().as_secs_f64();
    let prove_cpu_s = cpu_since(c);
    let scale = setup.model.output_scale;
    let argmax = output
        .iter()
        .enumerate()
        .max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    let statement = json!({
        "registered_model_id": hex(&setup.reg.id()),
        "input": q,
        "output": output,
        "output_scale": scale,
        "output_dequantized": output.iter().map(|v| *v as f64 * scale).collect::<Vec<_>>(),
        "argmax": argmax,
    });
    std::fs::write(
        a.out.join("statement.json"),
        serde_json::to_vec(&statement)?,
    )?;
    std::fs::write(a.out.join("proof.bin"), &bytes)?;
    let setup_bytes = ["model.bin", "registered.bin", "registration.bin"]
        .iter()
        .filter_map(|f| std::fs::metadata(a.out.join(f)).ok())
        .map(|m| m.len())
        .sum::<u64>();
    let report = json!({
        "ok": true,
        "protocol": proof::PROTOCOL_NAME,
        "setup_reused": reused,
        "setup_s": setup_s,
        "load_s": if reused { load_s } else { 0.0 },
        "prove_s": prove_s,
        "setup_cpu_s": setup_cpu_s,
        "prove_cpu_s": prove_cpu_s,
        "proof_bytes": bytes.len(),
        "setup_bytes": setup_bytes,
        "soundness_bits": proof::soundness_bits(&setup.reg).ok(),
        "output": output,
        "argmax": argmax,
        "ignored_tail_ops": setup.info["ignored_tail_ops"],
        "peak_rss_bytes": peak_rss_bytes(),
    });
    println!("{report}");
    Ok(())
}

/// What `verify` read and checked, or why not.
struct Verified {
    reg: RegisteredModel,
    proof_bytes: usize,
    verify_s: f64,
    verify_cpu_s: Option<f64>,
    registration_verify_s: f64,
}

fn verify_dir(a: &VerifyArgs) -> Result<Verified> {
    let want = a.model_id.trim().to_ascii_lowercase();
    if want.len() != 64 || !want.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "--model-id {:?}: expected a registered-model id of 64 hex digits",
            a.model_id
        );
    }
    let reg = RegisteredModel::from_bytes(&read_bounded(&a.dir.join("registered.bin"), MAX_FILE)?)
        .context("decoding registered.bin")?;
    let got = hex(&reg.id());
    if got != want {
        return Err(IdMismatch {
            what: "registered.bin",
            expected: want,
            got,
        }
        .into());
    }
    // The registration proof: the committed weights are in their declared ranges.
    let t = Instant::now();
    let rp = read_bounded(&a.dir.join("registration.bin"), MAX_FILE)?;
    proof::verify_registration(&reg, &rp)
        .map_err(|e| anyhow!("registration proof rejected: {e}"))?;
    let registration_verify_s = t.elapsed().as_secs_f64();
    let st: Value = serde_json::from_slice(&read_bounded(&a.dir.join("statement.json"), MAX_FILE)?)
        .context("parsing statement.json")?;
    // The statement names the model it is about; it must be the same one.
    let claimed = st["registered_model_id"]
        .as_str()
        .ok_or_else(|| anyhow!("statement.json: no registered_model_id"))?
        .to_ascii_lowercase();
    if claimed != want {
        return Err(IdMismatch {
            what: "statement.json",
            expected: want,
            got: claimed,
        }
        .into());
    }
    let ints = |k: &str| -> Result<Vec<i64>> {
        st[k]
            .as_array()
            .ok_or_else(|| anyhow!("statement.json: no {k}"))?
            .iter()
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| anyhow!("statement.json: {k} must be integers"))
            })
            .collect()
    };
    let (input, output) = (ints("input")?, ints("output")?);
    let bytes = read_bounded(&a.dir.join("proof.bin"), MAX_FILE)?;
    let c = thread_cpu_s();
    let t = Instant::now();
    proof::verify(&reg, &input, &output, &bytes).map_err(|e| anyhow!("proof rejected: {e}"))?;
    Ok(Verified {
        verify_s: t.elapsed().as_secs_f64(),
        verify_cpu_s: cpu_since(c),
        proof_bytes: bytes.len(),
        reg,
        registration_verify_s,
    })
}

fn verify_cmd(a: &VerifyArgs) -> Result<()> {
    let t = Instant::now();
    match verify_dir(a) {
        Ok(Verified {
            reg,
            proof_bytes,
            verify_s,
            verify_cpu_s,
            registration_verify_s,
        }) => {
            println!(
                "{}",
                json!({
                    "ok": true,
                    "valid": true,
                    "protocol": proof::PROTOCOL_NAME,
                    "registered_model_id": hex(&reg.id()),
                    "soundness_bits": proof::soundness_bits(&reg).ok(),
                    "verify_s": verify_s,
                    "verify_cpu_s": verify_cpu_s,
                    "registration_verify_s": registration_verify_s,
                    "registration_soundness_bits": proof::registration_soundness_bits(&reg).ok(),
                    "total_s": t.elapsed().as_secs_f64(),
                    "proof_bytes": proof_bytes,
                    "peak_rss_bytes": peak_rss_bytes(),
                })
            );
            Ok(())
        }
        Err(e) => {
            println!(
                "{}",
                json!({
                    "ok": false,
                    "valid": false,
                    "error": format!("{e:#}"),
                    "model_id_mismatch": e.downcast_ref::<IdMismatch>().is_some(),
                    "total_s": t.elapsed().as_secs_f64(),
                    "peak_rss_bytes": peak_rss_bytes(),
                })
            );
            Err(e)
        }
    }
}
