//! `opal model ...` and `opal dataset ...`.

use crate::cli::{NodeArg, Output, TxOpts};
use crate::cmd::tx::submit;
use crate::output::{j, opt, print, print_as};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use opal_client::Client;
use opal_types::registry::{DatasetShare, DatasetSpec, Licence, Tier};
use opal_types::{Action, Amount, Hash, ModelRef};
use serde_json::json;
use std::path::Path;
use std::path::PathBuf;

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

/// `NAME:BPS`: a dataset a model was trained on, with its royalty share.
fn parse_share(s: &str) -> Result<DatasetShare, String> {
    let (name, bps) = s
        .split_once(':')
        .ok_or("expected NAME:BPS, e.g. digits:2000")?;
    Ok(DatasetShare {
        dataset: name.to_string(),
        bps: bps.parse().map_err(|_| "BPS must be an integer")?,
    })
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
            let m = Client::new(&node.node)?.model(&model)?;
            print_as(out, &m, || describe_model(&m))
        }
        ModelCmd::List { node } => {
            let list = Client::new(&node.node)?.models()?;
            print_as(out, &list, || {
                if list.models.is_empty() {
                    return "no models registered".into();
                }
                list.models
                    .iter()
                    .map(|m| {
                        format!(
                            "{:<28} owner {}  price {}  calls {}  hash {}",
                            m.model.to_string(),
                            opt(&m.owner),
                            m.spec.price,
                            m.calls,
                            &m.spec.content_hash.to_hex()[..16],
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        ModelCmd::Lineage { model, node } => {
            let l = Client::new(&node.node)?.lineage(&model)?;
            print_as(out, &l, || describe_lineage(&l.lineage))
        }
        ModelCmd::Quantize {
            onnx,
            calibration,
            label_column,
            holdout_every,
            act_bits,
            weight_bits,
            out: file,
        } => quantize_model(
            &onnx,
            &calibration,
            label_column.as_deref(),
            holdout_every,
            (act_bits, weight_bits),
            &file,
            out,
        ),
        ModelCmd::Transfer { name, to, opts } => {
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

/// `opal model quantize`: ONNX + calibration CSV -> canonical `.opalq` model file.
fn quantize_model(
    onnx: &Path,
    calibration: &Path,
    label_column: Option<&str>,
    holdout_every: Option<usize>,
    (act_bits, weight_bits): (u8, u8),
    file: &Path,
    out: Output,
) -> Result<()> {
    let onnx_bytes = opal_owner::read_bounded(onnx, opal_owner::MAX_MODEL_BYTES)?;
    let csv = String::from_utf8(opal_owner::read_bounded(calibration, 1 << 30)?)
        .map_err(|_| anyhow!("{} is not UTF-8 text", calibration.display()))?;
    let cal = opal_quant::calib::Calibration::from_csv(&csv, label_column, holdout_every)
        .map_err(|e| anyhow!("{}: {e}", calibration.display()))?;
    let q = opal_owner::quantize(&onnx_bytes, &cal, act_bits, weight_bits)
        .map_err(|e| anyhow!("{}: {e}", onnx.display()))?;
    let bytes = q.model.to_file_bytes();
    crate::output::write_file(file, &bytes)?;
    let r = q.report(file, &bytes, cal.rows.len());
    print_as(out, &r, || {
        let mut t = format!(
            "wrote {} ({} bytes, model id {}), calibrated on {} rows",
            r.out, r.bytes, r.model_id, r.calibration_rows
        );
        if let Some(h) = &q.holdout {
            t += &format!(
                "\nheld-out rows {}: float accuracy {:.4}, canonical accuracy {:.4}, agreement {:.4}",
                h.rows, h.float_accuracy, h.canonical_accuracy, h.label_agreement
            );
        }
        t
    })
}

/// The chain, as a registration asks it.
struct NodeRegistry(Client);

impl opal_owner::Registry for NodeRegistry {
    fn next_version(&mut self, name: &str) -> Result<u32, opal_owner::OwnerError> {
        let newest = self
            .0
            .model_opt(name)
            .map_err(|e| opal_owner::OwnerError::Chain(e.to_string()))?;
        Ok(newest.map_or(1, |m| m.model.spec.version + 1))
    }

    fn max_replay_cost(&mut self) -> Result<Option<u64>, opal_owner::OwnerError> {
        let status = self
            .0
            .status()
            .map_err(|e| opal_owner::OwnerError::Chain(e.to_string()))?;
        Ok(Some(status.inference_params.max_replay_cost))
    }
}

fn register_model(a: ModelRegisterArgs, out: Output) -> Result<()> {
    let terms = opal_owner::Terms {
        name: a.name.clone(),
        version: a.version,
        price: a.price,
        licence: a.licence,
        parent: a.parent,
        parent_bps: a.parent_share,
        datasets: a.datasets,
        tiers: (!a.tiers.is_empty()).then_some(a.tiers),
    };
    let node = &a.opts.node.node;
    let r = opal_owner::registration(&a.file, terms, &mut NodeRegistry(Client::new(node)?))?;
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    let content_hash = r.spec.content_hash;
    if !a.no_upload {
        let h = upload(node, &a.file, 1 << 20)?;
        if h != content_hash {
            bail!("the file changed while it was being registered");
        }
    }
    let m = r.spec.model_ref();
    submit(
        Action::RegisterModel { spec: r.spec },
        a.opts.clone(),
        &format!("registration of model {m} ({content_hash})"),
        out,
    )?;
    // The ledger checks zk proofs against the published verifying key: publish it unless
    // someone already has (the serving node would publish it too, at its first zk request).
    if let Some((k, model)) = r.zk {
        let id = k.weight_commitment;
        if Client::new(node)?.zk_key(&id)?.is_none() {
            submit(
                Action::PublishZkKey { key: k.key, model },
                a.opts,
                &format!("publication of the zk verifying key {id} of {m}"),
                out,
            )?;
        }
    }
    Ok(())
}

fn describe_model(d: &opal_api::ModelDetail) -> String {
    let (m, sp) = (&d.model, &d.model.spec);
    let mut lines = vec![
        format!("model      {}", m.model),
        format!("owner      {}", opt(&m.owner)),
        format!("hash       {}", sp.content_hash),
        format!("size       {} bytes, {}", sp.size, j(&sp.format)),
        format!("price      {} per inference", sp.price),
        format!("licence    {}", j(&sp.licence)),
        format!("tiers      {}", j(&sp.tiers)),
        format!("parent     {} ({} bps)", opt(&sp.parent), sp.parent_bps),
        format!("datasets   {}", j(&sp.datasets)),
        format!("calls      {} (revenue {})", m.calls, m.revenue),
    ];
    for svc in &d.services {
        lines.push(format!(
            "served by  {} at {} (fee {}, tiers {})",
            svc.node,
            svc.endpoint,
            svc.fee,
            j(&svc.tiers)
        ));
    }
    lines.join("\n")
}

fn describe_lineage(l: &opal_ledger::components::registry::Lineage) -> String {
    let mut lines = vec![format!("{} (owner {})", l.model, opt(&l.owner))];
    for d in &l.datasets {
        lines.push(format!(
            "  trained on dataset {} (owner {}, {} bps, hash {})",
            d.name,
            opt(&d.owner),
            d.bps,
            opt(&d.content_hash)
        ));
    }
    for a in &l.ancestors {
        lines.push(format!(
            "  fine-tuned from {} (owner {}; datasets {})",
            a.model,
            opt(&a.owner),
            j(&a.datasets)
        ));
    }
    for c in &l.children {
        lines.push(format!("  parent of {c}"));
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
                licence,
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
            let d = Client::new(&node.node)?.dataset(&name)?;
            let (info, sp) = (&d.dataset, &d.dataset.spec);
            print_as(out, &d, || {
                format!(
                    "dataset    {}\nowner      {}\nhash       {}\nsize       {} bytes\nlicence    {}\nmin share  {} bps\nused by    {}",
                    sp.name,
                    info.owner,
                    sp.content_hash,
                    sp.size,
                    j(&sp.licence),
                    sp.min_share_bps,
                    j(&d.used_by)
                )
            })
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Upload a model (or any artifact) file to a node's content-addressed store, in resumable
    /// chunks with a progress bar. Prints its BLAKE3 hash.
    Upload {
        file: PathBuf,
        /// Chunk size in bytes.
        #[arg(long, default_value_t = 1 << 20)]
        chunk_size: usize,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Register a model version from its file: hash, size and (for ONNX) input/output schema are
    /// read from the file, which is also uploaded to the node unless --no-upload.
    Register(ModelRegisterArgs),
    /// One model version (NAME@VERSION, or NAME for the newest), with the nodes serving it.
    Show {
        model: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Every registered model version.
    List {
        #[command(flatten)]
        node: NodeArg,
    },
    /// A model's lineage: datasets, ancestors (fine-tuned from), descendants.
    Lineage {
        model: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Quantize an ONNX model into Opal's canonical integer model file (.opalq: the semantics
    /// the `replay` tier re-executes and the `zk` tier proves), calibrating scales on the rows of
    /// a CSV file (header row; every column but the label column is an input feature).
    Quantize {
        /// The float ONNX model.
        #[arg(long)]
        onnx: PathBuf,
        /// CSV of calibration inputs (e.g. the model's registered data set).
        #[arg(long)]
        calibration: PathBuf,
        /// Column to leave out of the features [default: `label` if the header has it].
        #[arg(long)]
        label_column: Option<String>,
        /// Hold out rows i with i % N == N - 1 (not used for calibration; with a label column,
        /// their float and canonical accuracy is reported). The digits demo split is 4.
        #[arg(long)]
        holdout_every: Option<usize>,
        /// Bits of activations and input (2..=16).
        #[arg(long, default_value_t = 8)]
        act_bits: u8,
        /// Bits of weights (2..=16).
        #[arg(long, default_value_t = 8)]
        weight_bits: u8,
        /// Where to write the .opalq model file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Hand a model name (every version, and its future royalties) to another owner.
    Transfer {
        name: String,
        /// The new owner's address.
        #[arg(long)]
        to: opal_types::Address,
        #[command(flatten)]
        opts: TxOpts,
    },
}

#[derive(Args, Debug)]
pub struct ModelRegisterArgs {
    /// The model file (.onnx or .gguf).
    pub file: PathBuf,
    /// Model name: lowercase letters, digits, '.', '_', '-'.
    #[arg(long)]
    pub name: String,
    /// Version [default: 1 for a new name, else the newest + 1].
    #[arg(long)]
    pub version: Option<u32>,
    /// Royalty per inference, in base units (split between owner, parent and datasets).
    #[arg(long)]
    pub price: Amount,
    /// open, non-commercial, commercial:FEE, or allow:ADDR,ADDR,...
    #[arg(long, default_value = "open")]
    pub licence: Licence,
    /// The model this one was fine-tuned from (NAME@VERSION).
    #[arg(long)]
    pub parent: Option<ModelRef>,
    /// Share of royalties paid to the parent's owner, in basis points.
    #[arg(long, default_value_t = 0)]
    pub parent_share: u32,
    /// A dataset it was trained on, with its royalty share: NAME:BPS (repeatable).
    #[arg(long = "dataset", value_parser = parse_share)]
    pub datasets: Vec<DatasetShare>,
    /// Tiers it may be served under, comma-separated [default: signed; signed,replay for a
    /// canonical .opalq model, the only format the replay tier accepts].
    #[arg(long, value_delimiter = ',')]
    pub tiers: Vec<Tier>,
    /// Register without uploading the file to the node.
    #[arg(long)]
    pub no_upload: bool,
    #[command(flatten)]
    pub opts: TxOpts,
}

#[derive(Subcommand, Debug)]
pub enum DatasetCmd {
    /// Register a dataset from its file (BLAKE3 hash and size are computed locally).
    Register {
        file: PathBuf,
        #[arg(long)]
        name: String,
        /// Terms for models trained on it: open, non-commercial, allow:ADDR,...
        #[arg(long, default_value = "open")]
        licence: Licence,
        /// Least royalty share, in basis points, that a model naming it must pay it.
        #[arg(long, default_value_t = 0)]
        min_share: u32,
        /// Also upload the file to the node's artifact store.
        #[arg(long)]
        upload: bool,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// A dataset and the models that name it.
    Show {
        name: String,
        #[command(flatten)]
        node: NodeArg,
    },
}
