//! `opal model ...` and `opal dataset ...`.

use crate::cli::{DatasetCmd, ModelCmd, ModelRegisterArgs, Output};
use crate::client::Client;
use crate::cmd::tx::submit;
use crate::output::{print, s};
use anyhow::{anyhow, bail, Context, Result};
use opal_types::registry::{DatasetShare, DatasetSpec, Licence, ModelFormat, ModelSpec, Tier};
use opal_types::{Action, Amount, Hash, ModelRef};
use serde_json::{json, Value};
use std::path::Path;

/// BLAKE3 and size of a file (the content hash the registry and the artifact store use).
pub(crate) fn file_hash(path: &Path) -> Result<(Hash, u64)> {
    let (h, size) =
        opal_artifacts::client::hash_file(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok((Hash(*h.as_bytes()), size))
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Upload `file` to the node's artifact store with a progress bar; resumes an earlier attempt.
pub(crate) fn upload(node: &str, file: &Path, chunk: u64) -> Result<Hash> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let pb = progress_bar(size, &format!("uploading {name}"));
    let r = opal_artifacts::client::upload(node, file, chunk, &mut |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    });
    pb.finish_and_clear();
    let h = r.map_err(|e| anyhow!("upload of {} to {node}: {e}", file.display()))?;
    Ok(Hash(*h.as_bytes()))
}

fn parse_licence(s: &str) -> Result<Licence> {
    s.parse().map_err(|e: String| anyhow!("--licence: {e}"))
}

fn format_of(file: &Path) -> Result<ModelFormat> {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("onnx") => Ok(ModelFormat::Onnx),
        Some("gguf") => Ok(ModelFormat::Gguf),
        _ => bail!(
            "{}: cannot tell the model format; the file must end in .onnx or .gguf",
            file.display()
        ),
    }
}

/// Input/output schema of an ONNX file, read by the runtime that will serve it (so a model the
/// nodes cannot load is refused before it is registered).
fn onnx_schema(file: &Path) -> Result<(String, String)> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let m = opal_infer::PreparedModel::load(&bytes, &opal_infer::Limits::default())
        .map_err(|e| anyhow!("{} is not a model Opal can serve: {e}", file.display()))?;
    let schema = m.schema();
    Ok((
        serde_json::to_string(&schema.inputs)?,
        serde_json::to_string(&schema.outputs)?,
    ))
}

pub fn run_model(cmd: ModelCmd, out: Output) -> Result<()> {
    match cmd {
        ModelCmd::Upload {
            file,
            chunk_size,
            node,
        } => {
            let h = upload(&node.node, &file, chunk_size as u64)?;
            let v = json!({"hash": h, "file": file.display().to_string()});
            print(out, &v, || format!("uploaded {} as {h}", file.display()));
            Ok(())
        }
        ModelCmd::Register(a) => register_model(a, out),
        ModelCmd::Show { model, node } => {
            let v = Client::new(&node.node)?.get(&format!("/api/models/{model}"))?;
            print(out, &v, || describe_model(&v));
            Ok(())
        }
        ModelCmd::List { node } => {
            let v = Client::new(&node.node)?.get("/api/models")?;
            print(out, &v, || {
                let list = v["models"].as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    return "no models registered".into();
                }
                list.iter()
                    .map(|m| {
                        format!(
                            "{:<28} owner {}  price {}  calls {}  hash {}",
                            s(m, "model"),
                            s(m, "owner"),
                            m["spec"]["price"].as_str().unwrap_or("-"),
                            s(m, "calls"),
                            &m["spec"]["content_hash"].as_str().unwrap_or("-")
                                [..16.min(m["spec"]["content_hash"].as_str().unwrap_or("-").len())],
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        ModelCmd::Lineage { model, node } => {
            let v = Client::new(&node.node)?.get(&format!("/api/models/{model}/lineage"))?;
            print(out, &v, || describe_lineage(&v));
            Ok(())
        }
        ModelCmd::Transfer { name, to, opts } => {
            let to = to.parse().map_err(|e| anyhow!("--to: {e}"))?;
            submit(
                Action::TransferModel {
                    name: name.clone(),
                    new_owner: to,
                },
                opts,
                &format!("transfer of model {name} to {to}"),
                out,
            )?;
            Ok(())
        }
    }
}

fn register_model(a: ModelRegisterArgs, out: Output) -> Result<()> {
    let format = format_of(&a.file)?;
    let (content_hash, size) = file_hash(&a.file)?;
    let (input_schema, output_schema) = match format {
        ModelFormat::Onnx => onnx_schema(&a.file)?,
        ModelFormat::Gguf => ("[]".into(), "[]".into()),
    };
    let c = Client::new(&a.opts.node.node)?;
    let version = match a.version {
        Some(v) => v,
        None => {
            let (code, v) = c.get_raw(&format!("/api/models/{}", a.name))?;
            match code {
                404 => 1,
                200 => v["spec"]["version"].as_u64().unwrap_or(0) as u32 + 1,
                _ => bail!("{}", crate::client::describe_error(code, &v)),
            }
        }
    };
    let datasets = a
        .datasets
        .iter()
        .map(|d| {
            let (name, bps) = d
                .split_once(':')
                .ok_or_else(|| anyhow!("--dataset {d:?}: expected NAME:BPS, e.g. digits:2000"))?;
            Ok(DatasetShare {
                dataset: name.to_string(),
                bps: bps
                    .parse()
                    .map_err(|_| anyhow!("--dataset {d:?}: BPS must be an integer"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let tiers = a
        .tiers
        .iter()
        .map(|t| t.parse::<Tier>().map_err(|e| anyhow!("--tiers: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let spec = ModelSpec {
        name: a.name.clone(),
        version,
        parent: a
            .parent
            .as_deref()
            .map(|p| p.parse::<ModelRef>().map_err(|e| anyhow!("--parent: {e}")))
            .transpose()?,
        parent_bps: a.parent_share,
        datasets,
        content_hash,
        size,
        format,
        input_schema,
        output_schema,
        price: a
            .price
            .parse::<Amount>()
            .map_err(|e| anyhow!("--price: {e}"))?,
        licence: parse_licence(&a.licence)?,
        tiers,
        weight_commitment: None,
    };
    spec.check().map_err(|e| anyhow!("{e}"))?;
    if !a.no_upload {
        let h = upload(&a.opts.node.node, &a.file, 1 << 20)?;
        if h != content_hash {
            bail!("the file changed while it was being registered");
        }
    }
    let m = spec.model_ref();
    submit(
        Action::RegisterModel { spec },
        a.opts,
        &format!("registration of model {m} ({content_hash})"),
        out,
    )?;
    Ok(())
}

fn describe_model(v: &Value) -> String {
    let sp = &v["spec"];
    let mut lines = vec![
        format!("model      {}", s(v, "model")),
        format!("owner      {}", s(v, "owner")),
        format!("hash       {}", s(sp, "content_hash")),
        format!("size       {} bytes, {}", s(sp, "size"), s(sp, "format")),
        format!("price      {} per inference", s(sp, "price")),
        format!("licence    {}", sp["licence"]),
        format!("tiers      {}", sp["tiers"]),
        format!(
            "parent     {} ({} bps)",
            s(sp, "parent"),
            s(sp, "parent_bps")
        ),
        format!("datasets   {}", sp["datasets"]),
        format!("calls      {} (revenue {})", s(v, "calls"), s(v, "revenue")),
    ];
    for svc in v["services"].as_array().cloned().unwrap_or_default() {
        lines.push(format!(
            "served by  {} at {} (fee {}, tiers {})",
            s(&svc, "node"),
            s(&svc, "endpoint"),
            s(&svc, "fee"),
            svc["tiers"]
        ));
    }
    lines.join("\n")
}

fn describe_lineage(v: &Value) -> String {
    let mut lines = vec![format!("{} (owner {})", s(v, "model"), s(v, "owner"))];
    for d in v["datasets"].as_array().cloned().unwrap_or_default() {
        lines.push(format!(
            "  trained on dataset {} (owner {}, {} bps, hash {})",
            s(&d, "name"),
            s(&d, "owner"),
            s(&d, "bps"),
            s(&d, "content_hash")
        ));
    }
    for a in v["ancestors"].as_array().cloned().unwrap_or_default() {
        lines.push(format!(
            "  fine-tuned from {} (owner {}; datasets {})",
            s(&a, "model"),
            s(&a, "owner"),
            a["datasets"]
        ));
    }
    for c in v["children"].as_array().cloned().unwrap_or_default() {
        lines.push(format!("  parent of {}", c.as_str().unwrap_or("-")));
    }
    lines.join("\n")
}

pub fn run_dataset(cmd: DatasetCmd, out: Output) -> Result<()> {
    match cmd {
        DatasetCmd::Register {
            file,
            name,
            licence,
            min_share,
            upload: up,
            opts,
        } => {
            let (content_hash, size) = file_hash(&file)?;
            let spec = DatasetSpec {
                name: name.clone(),
                content_hash,
                size,
                licence: parse_licence(&licence)?,
                min_share_bps: min_share,
            };
            spec.check().map_err(|e| anyhow!("{e}"))?;
            if up {
                upload(&opts.node.node, &file, 1 << 20)?;
            }
            submit(
                Action::RegisterDataset { spec },
                opts,
                &format!("registration of dataset {name} ({content_hash}, {size} bytes)"),
                out,
            )?;
            Ok(())
        }
        DatasetCmd::Show { name, node } => {
            let v = Client::new(&node.node)?.get(&format!("/api/datasets/{name}"))?;
            print(out, &v, || {
                format!(
                    "dataset    {}\nowner      {}\nhash       {}\nsize       {} bytes\nlicence    {}\nmin share  {} bps\nused by    {}",
                    s(&v["spec"], "name"),
                    s(&v, "owner"),
                    s(&v["spec"], "content_hash"),
                    s(&v["spec"], "size"),
                    v["spec"]["licence"],
                    s(&v["spec"], "min_share_bps"),
                    v["used_by"]
                )
            });
            Ok(())
        }
    }
}
