//! `shares`: what a settlement costs when the model's royalty stream has many share holders.
//! Three models with the same price and node: one not split, one split with a single holder,
//! one split among `--holders` holders (the owner splits it and transfers one share to each,
//! in real transactions). Timed on a store on disk: `execute_block` of a block settling
//! `--receipts` receipts of one model, per receipt (median over `--reps` blocks); then a
//! block in which 1,000 holders (at most) claim; then the exchange: a block of 1,000 resting
//! sells, and a block of 1,000 buys that each match the best ask.

use crate::common::{key, tx, Chain, CHAIN_ID};
use crate::stats::{median, table};
use opal_ledger::components::shares;
use opal_ledger::{Genesis, GenesisAccount, GenesisValidator, Params};
use opal_types::market::{OrderSpec, Side};
use opal_types::receipt::{InferenceRequest, ReceiptBody};
use opal_types::registry::{Licence, ModelFormat, ModelSpec, ServiceOffer, ServiceSpec};
use opal_types::shares::RoyaltyStream;
use opal_types::{Action, Amount, Hash, ModelRef, Receipt, Role, SecretKey, Tier, Transaction};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Holders of the widely held model's shares.
    #[arg(long, default_value_t = 10_000)]
    pub holders: u64,
    /// Receipts settled per timed block (in transactions of 32, inside the chain's 16 KiB
    /// transaction limit).
    #[arg(long, default_value_t = 256)]
    pub receipts: u64,
    /// Timed blocks per model.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
}

const MODELS: [&str; 3] = ["not-split", "one-holder", "many-holders"];

fn spec(name: &str, i: u8) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        version: 1,
        parent: None,
        parent_bps: 0,
        datasets: vec![],
        content_hash: Hash([i; 32]),
        size: 4096,
        format: ModelFormat::Onnx,
        input_schema: "[]".into(),
        output_schema: "[]".into(),
        price: Amount(100),
        licence: Licence::Open,
        tiers: vec![Tier::Signed],
        weight_commitment: None,
        replay_cost: None,
    }
}

struct Parties {
    owner: SecretKey,
    node: SecretKey,
    caller: SecretKey,
}

fn receipt(p: &Parties, c: &Chain, model: usize, salt: u64) -> Receipt {
    let req = InferenceRequest {
        chain_id: CHAIN_ID.into(),
        node: p.node.address(),
        model: ModelRef::new(MODELS[model], 1),
        model_hash: Hash([model as u8 + 1; 32]),
        input_hash: Hash([1; 32]),
        tier: Tier::Signed,
        max_price: Amount(1_000),
        commercial: false,
        salt,
        expires_ms: c.time_ms + 600_000,
        escalation: Default::default(),
    };
    ReceiptBody {
        request: req.sign(&p.caller),
        output_hash: Hash([2; 32]),
        price: Amount(200),
        units: 1,
        height: c.height,
        node_key: p.node.public_key(),
    }
    .sign(&p.node)
}

pub fn run(mut args: Args, quick: bool) -> anyhow::Result<()> {
    if quick {
        args.holders = 50;
        args.receipts = 16;
        args.reps = 2;
    }
    let nh = args.holders.max(1);
    let p = Parties {
        owner: key(1),
        node: key(2),
        caller: key(3),
    };
    let validator = key(0);
    let holders: Vec<SecretKey> = (0..nh).map(|i| key(100 + i)).collect();
    let mut params = Params::default();
    params.max_block_txs = (nh + 100) as u32;
    params.max_block_bytes = 8 * 1024 * 1024;
    let genesis = Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: 1_700_000_000_000,
        params,
        staking: Default::default(),
        inference: Default::default(),
        governance: Default::default(),
        rewards: Default::default(),
        accounts: [&p.owner, &p.node, &p.caller]
            .into_iter()
            .chain(&holders)
            .map(|k| GenesisAccount {
                address: k.address(),
                balance: Amount(1_000_000_000_000),
            })
            .collect(),
        validators: vec![GenesisValidator {
            name: "v0".into(),
            public_key: validator.public_key(),
            operator: None,
            stake: Amount(1_000_000_000_000),
            vrf_key: validator.vrf_public_key(),
        }],
    };
    let (mut c, _dir) = Chain::start(&genesis, &validator)?;

    let mut setup: Vec<Transaction> = MODELS
        .iter()
        .enumerate()
        .map(|(i, m)| {
            tx(
                &p.owner,
                i as u64,
                Action::RegisterModel {
                    spec: spec(m, i as u8 + 1),
                },
            )
        })
        .collect();
    setup.push(tx(
        &p.node,
        0,
        Action::BondRole {
            role: Role::InferenceNode,
            amount: Amount(1_000_000),
        },
    ));
    setup.push(tx(
        &p.caller,
        0,
        Action::FundEscrow {
            node: p.node.address(),
            amount: Amount(100_000_000_000),
        },
    ));
    c.block(setup)?;
    let offers = MODELS
        .iter()
        .map(|m| ServiceOffer {
            model: ModelRef::new(*m, 1),
            tiers: vec![Tier::Signed],
            fee: Amount(90),
        })
        .collect();
    let declare = Action::DeclareService {
        spec: ServiceSpec {
            endpoint: "http://127.0.0.1:9000".into(),
            offers,
        },
    };
    let split = |name: &str, nonce| {
        tx(
            &p.owner,
            nonce,
            Action::SplitShares {
                stream: RoyaltyStream::Model(name.into()),
                shares: nh,
            },
        )
    };
    c.block(vec![
        tx(&p.node, 1, declare),
        split(MODELS[1], 3),
        split(MODELS[2], 4),
    ])?;
    eprintln!("shares: {nh} transfers of one share each...");
    let many = RoyaltyStream::Model(MODELS[2].into());
    // The owner keeps one share; every holder but the last gets one.
    let transfers = holders
        .iter()
        .take((nh - 1) as usize)
        .enumerate()
        .map(|(i, h)| {
            tx(
                &p.owner,
                5 + i as u64,
                Action::TransferShares {
                    stream: many.clone(),
                    to: h.address(),
                    shares: 1,
                },
            )
        })
        .collect();
    c.block(transfers)?;
    let counted = shares::pool_info(&c.overlay()?, &many)?
        .map(|p| p.holders)
        .unwrap_or(0);

    let mut node_nonce = 2;
    let mut salt = 0;
    let mut per_receipt = [vec![], vec![], vec![]];
    let per_tx = 32; // 32 receipts are about 13 KB: inside max_tx_bytes (16 KiB)
    for _ in 0..args.reps {
        for (m, times) in per_receipt.iter_mut().enumerate() {
            let mut txs = vec![];
            let mut left = args.receipts;
            while left > 0 {
                let n = left.min(per_tx);
                let receipts = (0..n)
                    .map(|_| {
                        salt += 1;
                        receipt(&p, &c, m, salt)
                    })
                    .collect();
                txs.push(tx(&p.node, node_nonce, Action::SettleReceipts { receipts }));
                node_nonce += 1;
                left -= n;
            }
            let took = c.block(txs)?;
            times.push(took / args.receipts as f64);
        }
    }
    let pool = shares::pool_info(&c.overlay()?, &many)?;
    let claimers = holders.iter().take(1_000.min(nh as usize - 1));
    let claims: Vec<Transaction> = claimers
        .map(|h| {
            tx(
                h,
                0,
                Action::ClaimShares {
                    stream: many.clone(),
                },
            )
        })
        .collect();
    let n_claims = claims.len();
    let claim_ms = c.block(claims)?;

    // The exchange: every claimer rests a sell of its one share (prices 1,000 to 1,009),
    // then the owner sends as many buys of one share at 2,000: each matches the best ask.
    let sellers: Vec<&SecretKey> = holders.iter().take(n_claims).collect();
    let asks: Vec<Transaction> = sellers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            tx(
                h,
                1,
                Action::PlaceOrder {
                    order: OrderSpec {
                        stream: many.clone(),
                        side: Side::Sell,
                        price: Amount(1_000 + (i % 10) as u128),
                        shares: 1,
                        expires_height: None,
                    },
                },
            )
        })
        .collect();
    let rest_ms = c.block(asks)?;
    let owner_nonce = 5 + nh - 1;
    let buys: Vec<Transaction> = (0..n_claims as u64)
        .map(|i| {
            tx(
                &p.owner,
                owner_nonce + i,
                Action::PlaceOrder {
                    order: OrderSpec {
                        stream: many.clone(),
                        side: Side::Buy,
                        price: Amount(2_000),
                        shares: 1,
                        expires_height: None,
                    },
                },
            )
        })
        .collect();
    let match_ms = c.block(buys)?;
    let traded = opal_ledger::components::market::trades(&c.overlay()?, &many)?.len();

    println!(
        "\nshares: {} receipts a block (price 200, royalty 100 a receipt), {} blocks per model; \
         {counted} holders of {MODELS2}",
        args.receipts,
        args.reps,
        MODELS2 = MODELS[2]
    );
    let rows = MODELS
        .iter()
        .zip(&per_receipt)
        .map(|(m, t)| {
            vec![
                format!("settle one receipt of {m}"),
                format!("{:.3}", median(t)),
                t.len().to_string(),
            ]
        })
        .chain([
            vec![
                format!("execute_block of {n_claims} ClaimShares (per claim)"),
                format!("{:.3}", claim_ms / n_claims.max(1) as f64),
                "1".into(),
            ],
            vec![
                format!("execute_block of {n_claims} resting sells (per order)"),
                format!("{:.3}", rest_ms / n_claims.max(1) as f64),
                "1".into(),
            ],
            vec![
                format!("execute_block of {n_claims} buys, each matching the best ask (per order)"),
                format!("{:.3}", match_ms / n_claims.max(1) as f64),
                "1".into(),
            ],
        ])
        .collect::<Vec<_>>();
    table(&["what", "median ms", "blocks"], &rows);
    println!(
        "matched: {} orders a second (one block of {n_claims}; {traded} trades kept)",
        (n_claims as f64 / (match_ms / 1_000.0)).round()
    );
    if let Some(pool) = pool {
        println!(
            "{}: paid in {}, {} a share, {} waiting",
            pool.stream, pool.paid_in, pool.per_share, pool.remainder
        );
    }
    Ok(())
}
