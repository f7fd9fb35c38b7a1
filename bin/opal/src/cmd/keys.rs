use crate::cli::{KeyringArg, Output};
use crate::keyring::{keyring_dir, resolve, valid_name};
use crate::output::print;
use anyhow::{bail, Result};
use clap::Subcommand;
use opal_node::home::KeyFile;
use opal_types::SecretKey;
use serde_json::json;

pub fn run(cmd: KeysCmd, out: Output) -> Result<()> {
    match cmd {
        KeysCmd::New { name, keyring } => {
            valid_name(&name)?;
            let dir = keyring_dir(&keyring.keyring);
            let path = dir.join(format!("{name}.json"));
            if path.exists() {
                bail!("a key named {name:?} already exists at {}", path.display());
            }
            let k = SecretKey::generate();
            KeyFile::new(&name, &k).write(&path)?;
            let v = json!({"name": name, "address": k.address(), "public_key": k.public_key(), "file": path});
            print(out, &v, || {
                format!(
                    "created key {name}\n  address     {}\n  public key  {}\n  file        {}",
                    k.address(),
                    k.public_key(),
                    path.display()
                )
            });
        }
        KeysCmd::List { keyring } => {
            let dir = keyring_dir(&keyring.keyring);
            let mut keys = vec![];
            for (p, k) in KeyFile::read_dir(&dir) {
                match k {
                    Ok(k) => keys.push(k),
                    Err(e) => eprintln!("warning: skipping {}: {e}", p.display()),
                }
            }
            let v = json!(keys
                .iter()
                .map(|k| json!({"name": k.name, "address": k.address}))
                .collect::<Vec<_>>());
            print(out, &v, || {
                if keys.is_empty() {
                    format!(
                        "no keys in {} (create one with `opal keys new NAME`)",
                        dir.display()
                    )
                } else {
                    keys.iter()
                        .map(|k| format!("{:<16} {}", k.name, k.address))
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            });
        }
        KeysCmd::Show {
            key,
            secret,
            keyring,
        } => {
            let k = resolve(&key, &keyring.keyring)?;
            let mut v = json!({"name": k.name, "address": k.address, "public_key": k.public_key});
            if secret {
                v["secret_key"] = json!(k.secret_key);
            }
            print(out, &v, || {
                let mut s = format!(
                    "{}\n  address     {}\n  public key  {}",
                    k.name, k.address, k.public_key
                );
                if secret {
                    s += &format!("\n  secret key  {}", k.secret_key);
                }
                s
            });
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a new key and save it in the keyring.
    New {
        name: String,
        #[command(flatten)]
        keyring: KeyringArg,
    },
    /// List the keys in the keyring.
    List {
        #[command(flatten)]
        keyring: KeyringArg,
    },
    /// Show a key's address and public key (the secret only with --secret).
    Show {
        /// A key name in the keyring, or the path of a key file.
        key: String,
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        keyring: KeyringArg,
    },
}
