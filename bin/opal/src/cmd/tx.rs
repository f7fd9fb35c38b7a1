use crate::cli::{Output, TxCmd};
use crate::client::Client;
use crate::keyring::resolve;
use crate::output::{print, s};
use anyhow::{anyhow, bail, Context, Result};
use opal_types::{Action, Address, Amount, TxBody};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub fn run(cmd: TxCmd, out: Output) -> Result<()> {
    match cmd {
        TxCmd::Transfer {
            from,
            to,
            amount,
            fee,
            no_wait,
            node,
            keyring,
        } => {
            let key = resolve(&from, &keyring.keyring)?.secret()?;
            let to: Address = to.parse().map_err(|e| anyhow!("--to: {e}"))?;
            let amount: Amount = amount.parse().map_err(|e| anyhow!("--amount: {e}"))?;
            let c = Client::new(&node.node)?;
            let status = c.get("/api/status")?;
            let chain_id = status["chain_id"]
                .as_str()
                .context("status without chain_id")?
                .to_string();
            let fee: Amount = match fee {
                Some(f) => f.parse().map_err(|e| anyhow!("--fee: {e}"))?,
                None => serde_json::from_value(status["params"]["min_fee"].clone())
                    .context("status without params.min_fee")?,
            };
            let acct = c.get(&format!("/api/accounts/{}", key.address()))?;
            let nonce = acct["next_nonce"]
                .as_u64()
                .or(acct["nonce"].as_u64())
                .context("account without nonce")?;
            let tx = TxBody {
                chain_id,
                nonce,
                fee,
                action: Action::Transfer { to, amount },
            }
            .sign(&key);
            let r = c.post_json("/api/txs", &json!({"tx": hex::encode(tx.to_bytes())}))?;
            let hash = s(&r, "hash");
            if no_wait {
                print(out, &r, || format!("submitted {hash} (pending)"));
                return Ok(());
            }
            let v = wait_committed(&c, &hash, Duration::from_secs(60))?;
            print(out, &v, || {
                if v["ok"].as_bool() == Some(true) {
                    format!(
                        "committed {hash} at height {}: {amount} from {} to {to} (fee {fee})",
                        s(&v, "height"),
                        key.address()
                    )
                } else {
                    format!(
                        "transaction {hash} was included at height {} but rejected: {}",
                        s(&v, "height"),
                        s(&v, "error")
                    )
                }
            });
            if v["ok"].as_bool() != Some(true) {
                std::process::exit(2);
            }
            Ok(())
        }
    }
}

fn wait_committed(c: &Client, hash: &str, timeout: Duration) -> Result<Value> {
    let start = Instant::now();
    loop {
        let (code, v) = c.get_raw(&format!("/api/txs/{hash}"))?;
        match v["status"].as_str() {
            Some("committed") => return Ok(v),
            Some("dropped") => bail!(
                "transaction {hash} was dropped from the mempool: {}",
                s(&v, "error")
            ),
            _ if code >= 500 => bail!("{}", crate::client::describe_error(code, &v)),
            _ => {}
        }
        if start.elapsed() > timeout {
            bail!("transaction {hash} not committed after {}s; check later with `opal query tx {hash}`", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
