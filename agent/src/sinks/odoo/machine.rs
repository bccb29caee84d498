//! The exactly-once state machine of an event (odoo-api.md §4), for many events at once.
//!
//! Every event goes through the same steps, each safe to repeat after a crash, a timeout or a
//! lost answer, because each starts from what Odoo has rather than from what the sink
//! remembers:
//!
//! 1. **Find** — the event's picking: by external id `tallyman.evt_…`
//!    (`ir.model.data.check_object_reference`, the one lookup a least-privilege user may make),
//!    or, for many events in one call, by `origin` (the event id, written in the same
//!    transaction as the external id). Found done: nothing more to do.
//! 2. **Create** — `stock.picking.load`: the picking, its external id, its moves and theirs
//!    in one transaction. Only for events not found.
//! 3. **Confirm** — `action_confirm`, only for a draft picking.
//! 4. **Lines** — read the moves and move lines; change only the lines that differ from the
//!    event (lot, quantity, places, expiry); mark moves `picked` (17+).
//! 5. **Validate** — `button_validate` with the context that skips the backorder, immediate,
//!    expiry and SMS wizards; a wizard that comes back anyway is answered as the web client
//!    would. Only for a picking read as not done in this run.
//! 6. **Verify** — read the state: `done` is the only *delivered*.
//!
//! Throughput: the steps run for a group of events at once — one `search_read` finds them
//! all, one `load` creates them all, one `action_confirm` and one `button_validate` take all
//! their ids. When a grouped call is refused (one bad event makes Odoo refuse the whole call),
//! the events of that step go through the machine one at a time, from step 1, so one bad event
//! never blocks the others; a retryable failure sends the step's events back to the engine.
//! A consumption in scrap mode follows the same pattern with `stock.scrap` (`action_validate`
//! takes one scrap per call).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use serde_json::{Value, json};
use tracing::debug;

use super::error::{Class, OdooError};
use super::mapping::{
    self, ExistingLine, ExistingMove, LineChanges, MODULE, PickingPlan, ScrapsPlan, WizardStep,
};
use super::transport::{Call, Caller, answer};
use crate::sinks::Outcome;

/// Most confirmation wizards answered in a row for one validation.
const MAX_WIZARDS: usize = 4;

/// The outcome for the events of a call that failed with `e`.
pub fn failed(e: &OdooError) -> Outcome {
    match e.class() {
        Class::Retry { after } => Outcome::Retry {
            after,
            error: e.to_string(),
        },
        Class::Halt => Outcome::Halt {
            reason: e.to_string(),
        },
        Class::Reject | Class::NotFound => Outcome::Rejected { reason: e.reason() },
    }
}

/// Run `futures` concurrently (on this task); their outputs in order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// A record found by the sink: its id, reference and state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    id: i64,
    name: String,
    state: String,
}

fn found_records(label: &str, v: &Value) -> Result<Vec<(Option<String>, Found)>, OdooError> {
    answer::records(label, v)?
        .iter()
        .map(|r| {
            Ok((
                answer::text(r, "origin"),
                Found {
                    id: answer::id(label, r)?,
                    name: answer::text(r, "name").unwrap_or_default(),
                    state: answer::text(r, "state").unwrap_or_default(),
                },
            ))
        })
        .collect()
}

/// Records of `model` whose origin is one of `origins`, by origin.
async fn find_by_origin(
    odoo: &dyn Caller,
    model: &str,
    origins: &[&str],
) -> Result<HashMap<String, Vec<Found>>, OdooError> {
    let call = Call::new(model, "search_read")
        .arg("domain", json!([["origin", "in", origins]]))
        .kwarg("fields", json!(["origin", "state", "name"]));
    let label = call.label();
    let v = odoo.call(call).await?;
    let mut by_origin: HashMap<String, Vec<Found>> = HashMap::new();
    for (origin, found) in found_records(&label, &v)? {
        if let Some(o) = origin {
            by_origin.entry(o).or_default().push(found);
        }
    }
    Ok(by_origin)
}

/// The record of `model` with external id `tallyman.<xmlid>`, if there is one.
async fn find_by_xmlid(
    odoo: &dyn Caller,
    model: &str,
    xmlid: &str,
) -> Result<Option<Found>, OdooError> {
    let call = Call::new("ir.model.data", "check_object_reference")
        .arg("module", json!(MODULE))
        .arg("xml_id", json!(xmlid));
    let label = call.label();
    let id = match odoo.call(call).await {
        Ok(v) => {
            let pair = v.as_array();
            let got_model = pair.and_then(|p| p.first()).and_then(Value::as_str);
            let id = pair.and_then(|p| p.get(1)).and_then(Value::as_i64);
            match (got_model, id) {
                (Some(m), Some(id)) if m == model => id,
                _ => {
                    return Err(OdooError::Protocol {
                        call: label,
                        detail: format!(
                            "expected [\"{model}\", id] for {MODULE}.{xmlid}, got {}",
                            super::error::bounded(&v.to_string(), 200)
                        ),
                    });
                }
            }
        }
        Err(e) if e.class() == Class::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let found = read_states(odoo, model, &[id]).await?;
    Ok(found.into_values().next())
}

/// `state` and `name` of records (missing ones are absent).
async fn read_states(
    odoo: &dyn Caller,
    model: &str,
    ids: &[i64],
) -> Result<HashMap<i64, Found>, OdooError> {
    let call = Call::new(model, "read")
        .ids(ids.to_vec())
        .kwarg("fields", json!(["state", "name"]));
    let label = call.label();
    let v = odoo.call(call).await?;
    Ok(found_records(&label, &v)?
        .into_iter()
        .map(|(_, f)| (f.id, f))
        .collect())
}

/// Create the pickings of `plans` (with their moves and external ids) in one `load`.
async fn create_pickings(odoo: &dyn Caller, plans: &[&PickingPlan]) -> Result<Vec<i64>, OdooError> {
    let (columns, rows) = mapping::picking_load(plans, odoo.fields());
    let call = Call::new("stock.picking", "load")
        .arg("fields", json!(columns))
        .arg("data", json!(rows));
    let label = call.label();
    let v = odoo.call(call).await?;
    answer::loaded(&label, &v, plans.len())
}

async fn confirm(odoo: &dyn Caller, ids: &[i64]) -> Result<(), OdooError> {
    odoo.call(Call::new("stock.picking", "action_confirm").ids(ids.to_vec()))
        .await
        .map(|_| ())
}

/// Make the move lines of each picking exactly the event's lines, and mark the moves picked
/// (17+). Returns the pickings that cannot be set (their moves changed in Odoo), with why.
async fn set_lines(
    odoo: &dyn Caller,
    items: &[(i64, &PickingPlan)],
) -> Result<HashMap<i64, String>, OdooError> {
    let fields = odoo.fields();
    let ids: Vec<i64> = items.iter().map(|(id, _)| *id).collect();
    let mut move_fields = vec!["picking_id", "product_id", "product_uom", "state"];
    if fields.picked {
        move_fields.push("picked");
    }
    let moves_call = Call::new("stock.move", "search_read")
        .arg("domain", json!([["picking_id", "in", ids]]))
        .kwarg("fields", json!(move_fields));
    let lines_call = Call::new("stock.move.line", "search_read")
        .arg("domain", json!([["picking_id", "in", ids]]))
        .kwarg(
            "fields",
            json!([
                "move_id",
                "lot_id",
                "lot_name",
                fields.line_qty,
                "location_id",
                "location_dest_id"
            ]),
        );
    let (moves_label, lines_label) = (moves_call.label(), lines_call.label());
    let mut answers = join_all(vec![odoo.call(moves_call), odoo.call(lines_call)]).await;
    let lines_v = answers.pop().unwrap_or(Ok(Value::Null))?;
    let moves_v = answers.pop().unwrap_or(Ok(Value::Null))?;
    let mut moves = Vec::new();
    for r in answer::records(&moves_label, &moves_v)? {
        let (Some((picking, _)), Some((product, _))) = (
            answer::many2one(r, "picking_id"),
            answer::many2one(r, "product_id"),
        ) else {
            continue;
        };
        moves.push(ExistingMove {
            id: answer::id(&moves_label, r)?,
            picking,
            product,
            uom: answer::many2one(r, "product_uom").map(|(id, _)| id),
            state: answer::text(r, "state").unwrap_or_default(),
            picked: answer::flag(r, "picked"),
        });
    }
    let mut lines = Vec::new();
    for r in answer::records(&lines_label, &lines_v)? {
        let Some((move_id, _)) = answer::many2one(r, "move_id") else {
            continue;
        };
        lines.push(ExistingLine {
            id: answer::id(&lines_label, r)?,
            move_id,
            lot_id: answer::many2one(r, "lot_id").map(|(id, _)| id),
            lot_name: answer::text(r, "lot_name"),
            qty: r
                .get(fields.line_qty)
                .and_then(mapping::millionths_of)
                .unwrap_or(0),
            location: answer::many2one(r, "location_id").map_or(0, |(id, _)| id),
            location_dest: answer::many2one(r, "location_dest_id").map_or(0, |(id, _)| id),
        });
    }

    let mut problems = HashMap::new();
    let mut changes = LineChanges::default();
    let mut to_pick: Vec<i64> = Vec::new();
    for (picking, plan) in items {
        let mut pairs = Vec::with_capacity(plan.moves.len());
        let mut used: BTreeSet<i64> = BTreeSet::new();
        for m in &plan.moves {
            let found = moves.iter().find(|x| {
                x.picking == *picking
                    && x.product == m.product
                    && x.uom.is_none_or(|u| u == m.uom)
                    && !matches!(x.state.as_str(), "cancel" | "done")
                    && !used.contains(&x.id)
            });
            match found {
                Some(x) => {
                    used.insert(x.id);
                    pairs.push((x.id, m));
                    if fields.picked && !x.picked {
                        to_pick.push(x.id);
                    }
                }
                None => {
                    problems.insert(
                        *picking,
                        format!(
                            "the picking of this event (id {picking}) has no open move for {} any \
                             more: it was changed in Odoo",
                            m.product_name
                        ),
                    );
                }
            }
        }
        if !problems.contains_key(picking) {
            changes.extend(mapping::reconcile(*picking, &pairs, &lines, fields));
        }
    }
    apply(odoo, changes).await?;
    if !to_pick.is_empty() {
        odoo.call(
            Call::new("stock.move", "write")
                .ids(to_pick)
                .arg("vals", json!({"picked": true})),
        )
        .await?;
    }
    Ok(problems)
}

/// Apply line changes: unlinks first (they free reserved quantities), then rewrites and
/// creations together — several of them as `stock.move.line.load` imports (one call for many
/// lines with different values, in one transaction), a single one as a plain `write` or
/// `create`.
async fn apply(odoo: &dyn Caller, changes: LineChanges) -> Result<(), OdooError> {
    if changes.is_empty() {
        return Ok(());
    }
    if !changes.unlinks.is_empty() {
        odoo.call(Call::new("stock.move.line", "unlink").ids(changes.unlinks.clone()))
            .await?;
    }
    let calls: Vec<(Call, usize)> = match changes.as_loads() {
        Some(loads) => loads
            .into_iter()
            .map(|(columns, rows)| {
                let n = rows.len();
                let call = Call::new("stock.move.line", "load")
                    .arg("fields", json!(columns))
                    .arg("data", json!(rows))
                    // Datetimes in an import are read in the user's time zone, unless told.
                    .context(json!({"tz": "UTC"}));
                (call, n)
            })
            .collect(),
        None => {
            let mut calls: Vec<(Call, usize)> = changes
                .writes
                .into_iter()
                .map(|(ids, vals)| {
                    let call = Call::new("stock.move.line", "write")
                        .ids(ids)
                        .arg("vals", vals);
                    (call, 0)
                })
                .collect();
            if !changes.creates.is_empty() {
                let call =
                    Call::new("stock.move.line", "create").arg("vals_list", json!(changes.creates));
                calls.push((call, 0));
            }
            calls
        }
    };
    let results = join_all(
        calls
            .into_iter()
            .map(|(call, rows)| async move {
                let label = call.label();
                let is_load = call.method == "load";
                let v = odoo.call(call).await?;
                if is_load {
                    answer::loaded(&label, &v, rows)?;
                }
                Ok::<(), OdooError>(())
            })
            .collect(),
    )
    .await;
    for result in results {
        result?;
    }
    Ok(())
}

/// Answer the confirmation wizards an action may open, until the action is done. `extra` is
/// merged into each wizard's context (without replacing its own keys).
async fn answer_wizards(
    odoo: &dyn Caller,
    mut result: Value,
    extra: &Value,
) -> Result<(), OdooError> {
    for _ in 0..MAX_WIZARDS {
        match mapping::wizard_step(&result) {
            WizardStep::Done => return Ok(()),
            WizardStep::Unknown { model, name } => {
                return Err(OdooError::Refused {
                    call: model.clone(),
                    message: format!(
                        "Odoo asks for a confirmation the sink cannot give: \"{name}\" ({model})"
                    ),
                });
            }
            WizardStep::Process {
                model,
                button,
                mut context,
            } => {
                if let (Some(ctx), Some(extra)) = (context.as_object_mut(), extra.as_object()) {
                    for (k, v) in extra {
                        ctx.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                debug!(wizard = %model, button, "Answering a confirmation wizard.");
                let create = Call::new(model.clone(), "create")
                    .arg("vals_list", json!([{}]))
                    .context(context.clone());
                let label = create.label();
                let created = answer::created(&label, &odoo.call(create).await?)?;
                result = odoo
                    .call(Call::new(model, button).ids(created).context(context))
                    .await?;
            }
        }
    }
    Err(OdooError::Refused {
        call: "stock.picking.button_validate".into(),
        message: format!("Odoo kept asking for confirmations ({MAX_WIZARDS} in a row)"),
    })
}

async fn validate(odoo: &dyn Caller, ids: &[i64]) -> Result<(), OdooError> {
    let ctx = mapping::validate_context(ids);
    let result = odoo
        .call(
            Call::new("stock.picking", "button_validate")
                .ids(ids.to_vec())
                .context(ctx.clone()),
        )
        .await?;
    answer_wizards(odoo, result, &ctx).await
}

/// Where an event stands in a grouped run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Create,
    Confirm(i64),
    Lines(i64),
    Validate(i64),
    Verify(i64),
    /// Go through the machine alone.
    Alone,
    Done(Outcome),
}

fn stage_of(found: &Found, what: &str) -> Stage {
    match found.state.as_str() {
        "done" => Stage::Done(Outcome::Delivered),
        "cancel" => Stage::Done(Outcome::Rejected {
            reason: format!(
                "the {what} {} of this event was cancelled in Odoo; nothing was recorded",
                found.name
            ),
        }),
        "draft" => Stage::Confirm(found.id),
        _ => Stage::Lines(found.id),
    }
}

/// A grouped step failed with `e` for the events at `at`: a retry or a halt ends their run
/// with that outcome; a refusal sends them through the machine one at a time.
fn fail(stages: &mut [Stage], at: &[usize], e: &OdooError) {
    let next = match e.class() {
        Class::Reject | Class::NotFound if at.len() > 1 => Stage::Alone,
        _ => Stage::Done(failed(e)),
    };
    debug!(events = at.len(), error = %e, "A grouped call failed.");
    for i in at {
        if let Some(s) = stages.get_mut(*i) {
            *s = next.clone();
        }
    }
}

fn at(stages: &[Stage], pick: impl Fn(&Stage) -> Option<i64>) -> (Vec<usize>, Vec<i64>) {
    stages
        .iter()
        .enumerate()
        .filter_map(|(i, s)| pick(s).map(|id| (i, id)))
        .unzip()
}

/// A grouped run: one outcome per item, with the item's position in the batch.
pub type Run<'a> = Pin<Box<dyn Future<Output = Vec<(usize, Outcome)>> + Send + 'a>>;

/// Record the pickings of `items` (position in the batch, plan); one outcome per item.
pub fn pickings<'a>(odoo: &'a dyn Caller, items: Vec<(usize, &'a PickingPlan)>) -> Run<'a> {
    Box::pin(async move {
        if let [(idx, plan)] = items.as_slice() {
            return vec![(*idx, one_picking(odoo, plan).await)];
        }
        let mut stages: Vec<Stage> = vec![Stage::Create; items.len()];
        let all: Vec<usize> = (0..items.len()).collect();

        // 1. Find, by origin.
        let origins: Vec<&str> = items.iter().map(|(_, p)| p.origin.as_str()).collect();
        match find_by_origin(odoo, "stock.picking", &origins).await {
            Ok(found) => {
                for ((_, plan), stage) in items.iter().zip(stages.iter_mut()) {
                    *stage = match found.get(&plan.origin).map(Vec::as_slice) {
                        None | Some([]) => Stage::Create,
                        Some([f]) => stage_of(f, "picking"),
                        // Several pickings carry this origin: only the external id can tell.
                        Some(_) => Stage::Alone,
                    };
                }
            }
            Err(e) => fail(&mut stages, &all, &e),
        }

        // 2. Create.
        let (pos, _) = at(&stages, |s| (*s == Stage::Create).then_some(0));
        if !pos.is_empty() {
            let plans: Vec<&PickingPlan> = pos
                .iter()
                .filter_map(|i| items.get(*i).map(|x| x.1))
                .collect();
            match create_pickings(odoo, &plans).await {
                Ok(ids) => {
                    for (i, id) in pos.iter().zip(ids) {
                        if let Some(s) = stages.get_mut(*i) {
                            *s = Stage::Confirm(id);
                        }
                    }
                }
                Err(e) => fail(&mut stages, &pos, &e),
            }
        }

        // 3. Confirm.
        let (pos, ids) = at(&stages, |s| match s {
            Stage::Confirm(id) => Some(*id),
            _ => None,
        });
        if !ids.is_empty() {
            match confirm(odoo, &ids).await {
                Ok(()) => {
                    for (i, id) in pos.iter().zip(ids) {
                        if let Some(s) = stages.get_mut(*i) {
                            *s = Stage::Lines(id);
                        }
                    }
                }
                Err(e) => fail(&mut stages, &pos, &e),
            }
        }

        // 4. Lines.
        let (pos, ids) = at(&stages, |s| match s {
            Stage::Lines(id) => Some(*id),
            _ => None,
        });
        if !ids.is_empty() {
            let work: Vec<(i64, &PickingPlan)> = pos
                .iter()
                .zip(&ids)
                .filter_map(|(i, id)| items.get(*i).map(|x| (*id, x.1)))
                .collect();
            match set_lines(odoo, &work).await {
                Ok(problems) => {
                    for (i, id) in pos.iter().zip(ids) {
                        if let Some(s) = stages.get_mut(*i) {
                            *s = match problems.get(&id) {
                                Some(reason) => Stage::Done(Outcome::Rejected {
                                    reason: reason.clone(),
                                }),
                                None => Stage::Validate(id),
                            };
                        }
                    }
                }
                Err(e) => fail(&mut stages, &pos, &e),
            }
        }

        // 5. Validate.
        let (pos, ids) = at(&stages, |s| match s {
            Stage::Validate(id) => Some(*id),
            _ => None,
        });
        if !ids.is_empty() {
            match validate(odoo, &ids).await {
                Ok(()) => {
                    for (i, id) in pos.iter().zip(ids) {
                        if let Some(s) = stages.get_mut(*i) {
                            *s = Stage::Verify(id);
                        }
                    }
                }
                Err(e) => fail(&mut stages, &pos, &e),
            }
        }

        // 6. Verify.
        let (pos, ids) = at(&stages, |s| match s {
            Stage::Verify(id) => Some(*id),
            _ => None,
        });
        if !ids.is_empty() {
            match read_states(odoo, "stock.picking", &ids).await {
                Ok(found) => {
                    for (i, id) in pos.iter().zip(ids) {
                        if let Some(s) = stages.get_mut(*i) {
                            *s = match found.get(&id) {
                                Some(f) if f.state == "done" => Stage::Done(Outcome::Delivered),
                                _ => Stage::Alone,
                            };
                        }
                    }
                }
                Err(e) => fail(&mut stages, &pos, &e),
            }
        }

        // Alone: every refused or unclear event through the machine on its own.
        let alone: Vec<usize> = (0..items.len())
            .filter(|i| stages.get(*i) == Some(&Stage::Alone))
            .collect();
        let results = join_all(
            alone
                .iter()
                .filter_map(|i| items.get(*i))
                .map(|(_, plan)| one_picking(odoo, plan))
                .collect(),
        )
        .await;
        for (i, outcome) in alone.into_iter().zip(results) {
            if let Some(s) = stages.get_mut(i) {
                *s = Stage::Done(outcome);
            }
        }
        items
            .iter()
            .zip(stages)
            .map(|((idx, _), stage)| {
                let outcome = match stage {
                    Stage::Done(o) => o,
                    other => Outcome::Retry {
                        after: None,
                        error: format!("internal: the event stopped at {other:?}"),
                    },
                };
                (*idx, outcome)
            })
            .collect()
    })
}

/// One event's picking, from step 1 with its external id.
async fn one_picking(odoo: &dyn Caller, plan: &PickingPlan) -> Outcome {
    match one_picking_steps(odoo, plan).await {
        Ok(outcome) => outcome,
        Err(e) => failed(&e),
    }
}

async fn one_picking_steps(odoo: &dyn Caller, plan: &PickingPlan) -> Result<Outcome, OdooError> {
    let (id, name, state) = match find_by_xmlid(odoo, "stock.picking", &plan.xmlid).await? {
        Some(f) => (f.id, f.name, f.state),
        None => {
            let ids = create_pickings(odoo, &[plan]).await?;
            let id = ids.first().copied().ok_or_else(|| OdooError::Protocol {
                call: "stock.picking.load".into(),
                detail: "no id".into(),
            })?;
            (id, String::new(), "draft".to_owned())
        }
    };
    let found = Found {
        id,
        name,
        state: state.clone(),
    };
    match stage_of(&found, "picking") {
        Stage::Done(outcome) => return Ok(outcome),
        Stage::Confirm(_) => confirm(odoo, &[id]).await?,
        _ => {}
    }
    if let Some(reason) = set_lines(odoo, &[(id, plan)]).await?.remove(&id) {
        return Ok(Outcome::Rejected { reason });
    }
    validate(odoo, &[id]).await?;
    let after = read_states(odoo, "stock.picking", &[id]).await?;
    Ok(match after.get(&id) {
        Some(f) if f.state == "done" => Outcome::Delivered,
        Some(f) => Outcome::Rejected {
            reason: format!(
                "Odoo left the picking {} of this event in state \"{}\" after validating it",
                f.name, f.state
            ),
        },
        None => Outcome::Retry {
            after: None,
            error: format!(
                "the picking {id} of this event disappeared from Odoo while it was validated"
            ),
        },
    })
}

/// Record the scraps of `items` (consumption in scrap mode); one outcome per item.
pub async fn scraps(odoo: &dyn Caller, items: Vec<(usize, &ScrapsPlan)>) -> Vec<(usize, Outcome)> {
    if let [(idx, plan)] = items.as_slice() {
        return vec![(*idx, one_scraps(odoo, plan).await)];
    }
    let origins: Vec<&str> = items.iter().map(|(_, p)| p.origin.as_str()).collect();
    let mut out: Vec<Option<Outcome>> = vec![None; items.len()];
    let mut create: Vec<usize> = Vec::new();
    let mut existing: Vec<(usize, Vec<Found>)> = Vec::new();
    match find_by_origin(odoo, "stock.scrap", &origins).await {
        Ok(found) => {
            for (i, (_, plan)) in items.iter().enumerate() {
                match found.get(&plan.origin) {
                    None => create.push(i),
                    Some(f) if f.len() == plan.scraps.len() => existing.push((i, f.clone())),
                    // Some of its scraps are missing: the external ids tell which.
                    Some(_) => {}
                }
            }
        }
        Err(e) => {
            if !matches!(e.class(), Class::Reject | Class::NotFound) {
                return items.iter().map(|(idx, _)| (*idx, failed(&e))).collect();
            }
        }
    }
    if !create.is_empty() {
        let rows: Vec<(&str, &mapping::ScrapPlan)> = create
            .iter()
            .filter_map(|i| items.get(*i))
            .flat_map(|(_, p)| p.scraps.iter().map(|s| (p.origin.as_str(), s)))
            .collect();
        let (columns, data) = mapping::scrap_load(&rows);
        let call = Call::new("stock.scrap", "load")
            .arg("fields", json!(columns))
            .arg("data", json!(data));
        let label = call.label();
        match odoo
            .call(call)
            .await
            .and_then(|v| answer::loaded(&label, &v, rows.len()))
        {
            Ok(ids) => {
                let mut ids = ids.into_iter();
                for i in &create {
                    let n = items.get(*i).map_or(0, |x| x.1.scraps.len());
                    let found = ids
                        .by_ref()
                        .take(n)
                        .map(|id| Found {
                            id,
                            name: String::new(),
                            state: "draft".into(),
                        })
                        .collect();
                    existing.push((*i, found));
                }
            }
            Err(e) if !matches!(e.class(), Class::Reject | Class::NotFound) => {
                for i in &create {
                    if let Some(o) = out.get_mut(*i) {
                        *o = Some(failed(&e));
                    }
                }
            }
            // Refused: each event alone.
            Err(_) => {}
        }
    }
    let results = join_all(
        existing
            .iter()
            .map(|(_, found)| validate_scraps(odoo, found))
            .collect(),
    )
    .await;
    for ((i, _), result) in existing.iter().zip(results) {
        if let Some(o) = out.get_mut(*i) {
            *o = match result {
                Ok(true) => Some(Outcome::Delivered),
                Ok(false) => None,
                Err(e) if matches!(e.class(), Class::Reject | Class::NotFound) => None,
                Err(e) => Some(failed(&e)),
            };
        }
    }
    let alone: Vec<usize> = (0..items.len())
        .filter(|i| out.get(*i).is_some_and(Option::is_none))
        .collect();
    let results = join_all(
        alone
            .iter()
            .filter_map(|i| items.get(*i))
            .map(|(_, plan)| one_scraps(odoo, plan))
            .collect(),
    )
    .await;
    for (i, outcome) in alone.into_iter().zip(results) {
        if let Some(o) = out.get_mut(i) {
            *o = Some(outcome);
        }
    }
    items
        .iter()
        .zip(out)
        .map(|((idx, _), o)| {
            (
                *idx,
                o.unwrap_or(Outcome::Retry {
                    after: None,
                    error: "internal: no outcome for the scraps".into(),
                }),
            )
        })
        .collect()
}

/// Validate the scraps not done yet (one `action_validate` each: Odoo takes one scrap per
/// call), then read their states: all done?
async fn validate_scraps(odoo: &dyn Caller, scraps: &[Found]) -> Result<bool, OdooError> {
    let todo: Vec<i64> = scraps
        .iter()
        .filter(|f| f.state != "done")
        .map(|f| f.id)
        .collect();
    let results = join_all(
        todo.iter()
            .map(|id| async move {
                let v = odoo
                    .call(Call::new("stock.scrap", "action_validate").ids(vec![*id]))
                    .await?;
                answer_wizards(odoo, v, &json!({})).await
            })
            .collect(),
    )
    .await;
    for r in results {
        r?;
    }
    let ids: Vec<i64> = scraps.iter().map(|f| f.id).collect();
    let after = read_states(odoo, "stock.scrap", &ids).await?;
    Ok(ids
        .iter()
        .all(|id| after.get(id).is_some_and(|f| f.state == "done")))
}

async fn one_scraps(odoo: &dyn Caller, plan: &ScrapsPlan) -> Outcome {
    match one_scraps_steps(odoo, plan).await {
        Ok(o) => o,
        Err(e) => failed(&e),
    }
}

async fn one_scraps_steps(odoo: &dyn Caller, plan: &ScrapsPlan) -> Result<Outcome, OdooError> {
    let found: Vec<Option<Found>> = join_all(
        plan.scraps
            .iter()
            .map(|s| find_by_xmlid(odoo, "stock.scrap", &s.xmlid))
            .collect(),
    )
    .await
    .into_iter()
    .collect::<Result<_, _>>()?;
    let missing: Vec<(&str, &mapping::ScrapPlan)> = plan
        .scraps
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(s, _)| (plan.origin.as_str(), s))
        .collect();
    let mut created = Vec::new();
    if !missing.is_empty() {
        let (columns, data) = mapping::scrap_load(&missing);
        let call = Call::new("stock.scrap", "load")
            .arg("fields", json!(columns))
            .arg("data", json!(data));
        let label = call.label();
        created = answer::loaded(&label, &odoo.call(call).await?, missing.len())?;
    }
    let mut created = created.into_iter();
    let all: Vec<Found> = found
        .into_iter()
        .filter_map(|f| {
            f.or_else(|| {
                created.next().map(|id| Found {
                    id,
                    name: String::new(),
                    state: "draft".into(),
                })
            })
        })
        .collect();
    if let Some(cancelled) = all.iter().find(|f| f.state == "cancel") {
        return Ok(Outcome::Rejected {
            reason: format!(
                "the scrap {} of this event was cancelled in Odoo",
                cancelled.name
            ),
        });
    }
    Ok(if validate_scraps(odoo, &all).await? {
        Outcome::Delivered
    } else {
        Outcome::Rejected {
            reason: "Odoo did not complete the scraps of this event after validating them".into(),
        }
    })
}
