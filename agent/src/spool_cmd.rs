//! `tallyman spool --data-dir DIR …`: look into a stopped agent's spool, and hand dead letters
//! back to their sinks. The spool refuses to open while an agent holds it.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use tallyman_protocol::event::EventId;

use crate::cli::{DlqCommand, SpoolArgs, SpoolCommand};
use crate::spool::{Check, Selection, Spool, SpoolOptions};

pub fn run(args: &SpoolArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir.join("spool");
    if !dir.exists() {
        anyhow::bail!(
            "no spool at {} (is --data-dir the agent's data_dir?)",
            dir.display()
        );
    }
    let mut options = SpoolOptions::new(&dir, Vec::new());
    options.encryption_key_file = args.key_file.clone();
    options.check = if matches!(args.command, SpoolCommand::Stats) {
        Check::Full
    } else {
        Check::Quick
    };
    let (spool, check) = Spool::open(options).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let code = runtime.block_on(async {
        let out = match &args.command {
            SpoolCommand::Stats => {
                println!("{}", json!({"stats": spool.stats(), "self_check": check}));
                ExitCode::SUCCESS
            }
            SpoolCommand::List { limit, after } => {
                for stored in spool
                    .list(*after, *limit)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                {
                    println!("{}", json!({"seq": stored.seq, "event": stored.event}));
                }
                ExitCode::SUCCESS
            }
            SpoolCommand::Show { id } => {
                let id = EventId::parse(id).map_err(|e| anyhow::anyhow!("{e}"))?;
                match spool.get(id).map_err(|e| anyhow::anyhow!("{e}"))? {
                    Some(stored) => {
                        let dead: Vec<_> = spool
                            .dlq_list(None)
                            .map_err(|e| anyhow::anyhow!("{e}"))?
                            .into_iter()
                            .filter(|d| d.event_id == id)
                            .collect();
                        println!(
                            "{}",
                            json!({"seq": stored.seq, "event": stored.event, "dead_letters": dead})
                        );
                        ExitCode::SUCCESS
                    }
                    None => {
                        eprintln!(
                            "tallyman: no event {id} in the spool (delivered events are removed)"
                        );
                        ExitCode::FAILURE
                    }
                }
            }
            SpoolCommand::Dlq(DlqCommand::List) => {
                for dead in spool.dlq_list(None).map_err(|e| anyhow::anyhow!("{e}"))? {
                    println!("{}", json!(dead));
                }
                ExitCode::SUCCESS
            }
            SpoolCommand::Dlq(DlqCommand::Replay { ids, all, sink }) => {
                let which = if *all {
                    Selection::All
                } else {
                    let parsed: Result<Vec<EventId>, _> =
                        ids.iter().map(|i| EventId::parse(i)).collect();
                    Selection::Ids(parsed.map_err(|e| anyhow::anyhow!("{e}"))?)
                };
                let n = spool
                    .dlq_replay(sink.as_deref(), &which)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                println!("{}", json!({"replayed": n}));
                ExitCode::SUCCESS
            }
        };
        spool
            .close()
            .await
            .map_err(|e| anyhow::anyhow!("closing the spool: {e}"))?;
        anyhow::Ok(out)
    })?;
    Ok(code)
}
