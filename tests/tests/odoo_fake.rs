//! The fake Odoo (`tallyman_tests::odoo`) against what real Odoo 16–19 answered.
//!
//! - Replays: every one of the captures in tests/data/odoo-captures (`16/` … `19/`) is sent to
//!   a fake of its version after preparing the records it needs;
//!   ids, database name and keys are replaced by the fake's. Compared for every capture: the
//!   status, the content type where it was recorded, `WWW-Authenticate` where recorded, and
//!   the *shape* of the body (JSON types, object keys, array lengths where they are data of
//!   the seed). Compared exactly where stable: error `name` and `message` (except messages
//!   naming a record of the captured database, compared after substitution), `error.code`, the
//!   order of the error fields, results that do not depend on ids (`common.version`,
//!   authenticate, `true`, wizard names and models, the GS1 parse, `fields_get`,
//!   `name_search`, the HTML of an unknown database). See `prepare()` for the list.
//! - Stock semantics, each on 16, 17, 18 and 19: receipts with lots and expiry (lots reused,
//!   unique per product), serial numbers, the fields that differ per version, transfers with
//!   reservation (FEFO), consumption, scraps with the insufficient-quantity wizard, inventory
//!   adjustments, backorders, the 16 immediate-transfer wizard, the expiry wizard and the
//!   context keys that skip them, validating a done picking, `load` upserts with external ids,
//!   the inventory bot's access rights, `check_object_reference`, duplicate external ids, the
//!   common service, key rotation, JSON-2 on 19.
//! - Faults on each transport: commit-then-drop, serialization, lock, 5xx, delay,
//!   unauthorized, matching and order, latency; every call is one transaction; TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tallyman_tests::hub::Pki;
use tallyman_tests::odoo::{FakeOdoo, Fault, FaultKind, NewProduct, Tracking, Version};

/// A blocking JSON client for the fake (reqwest on its own current-thread runtime).
struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

/// What came back: status, content type, headers, the body as text and as JSON.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    headers: reqwest::header::HeaderMap,
    text: String,
    json: Value,
}

impl Client {
    fn new(odoo: &FakeOdoo) -> Client {
        Client::with(odoo, None, Duration::from_secs(20))
    }

    /// A client trusting only `ca_pem` (TLS), with this timeout per request.
    fn with(odoo: &FakeOdoo, ca_pem: Option<&str>, timeout: Duration) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(timeout);
        if let Some(pem) = ca_pem {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            builder = builder.tls_backend_preconfigured(tls);
        }
        Client {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: builder.build().unwrap(),
            base: odoo.url(),
        }
    }

    /// Send a request; `Err` when no answer came (connection closed, timeout).
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, reqwest::Error> {
        self.rt.block_on(async {
            let mut rb = self.http.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            );
            for (k, v) in headers {
                rb = rb.header(*k, v);
            }
            if let Some(b) = body {
                rb = rb.body(b);
            }
            let r = rb.send().await?;
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let content_type = headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let text = r.text().await?;
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            Ok(Answer {
                status,
                content_type,
                headers,
                text,
                json,
            })
        })
    }

    fn post_json(&self, path: &str, headers: &[(&str, String)], body: &Value) -> Answer {
        let mut h = vec![("Content-Type", "application/json".to_owned())];
        h.extend(headers.iter().cloned());
        self.send("POST", path, &h, Some(body.to_string().into_bytes()))
            .unwrap()
    }

    /// `POST /jsonrpc` with `params`.
    fn jsonrpc(&self, params: Value) -> Answer {
        self.post_json(
            "/jsonrpc",
            &[],
            &json!({"jsonrpc": "2.0", "method": "call", "params": params, "id": 1}),
        )
    }
}

// ---- a fake with helpers -----------------------------------------------------------------

/// A fake of one version and a client, with the call sequences of odoo-api.md §3.
struct T {
    odoo: FakeOdoo,
    c: Client,
    v: Version,
    /// Who `ek` calls as: uid and password or key (admin unless [`T::as_bot`]).
    who: RefCell<(i64, String)>,
}

/// A JSON-RPC error's `data`.
type RpcError = Value;

impl T {
    fn new(v: Version) -> T {
        let odoo = FakeOdoo::start(v);
        let c = Client::new(&odoo);
        T {
            odoo,
            c,
            v,
            who: RefCell::new((2, "admin".to_owned())),
        }
    }

    /// From now on `ek` (and every helper) calls as the Inventory / User bot with its key.
    fn as_bot(&self) {
        *self.who.borrow_mut() = (self.odoo.bot_uid(), self.odoo.bot_key());
    }

    /// `execute_kw` as `uid` with `secret`: the result (null when absent) or the error data.
    fn ek_as(
        &self,
        uid: i64,
        secret: &str,
        model: &str,
        method: &str,
        args: Value,
        kwargs: Value,
    ) -> Result<Value, RpcError> {
        let a = self.c.jsonrpc(json!({
            "service": "object", "method": "execute_kw",
            "args": [self.odoo.database(), uid, secret, model, method, args, kwargs]
        }));
        assert_eq!(a.status, 200, "{}", a.text);
        match a.json.get("error") {
            Some(e) => {
                assert_eq!(
                    e["code"],
                    json!(if self.v == Version::V19 { 0 } else { 200 })
                );
                Err(e["data"].clone())
            }
            None => Ok(a.json.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// `execute_kw` as admin (or the bot after [`T::as_bot`]).
    fn ek(&self, model: &str, method: &str, args: Value, kwargs: Value) -> Result<Value, RpcError> {
        let (uid, secret) = self.who.borrow().clone();
        self.ek_as(uid, &secret, model, method, args, kwargs)
    }

    /// `execute_kw` that must succeed.
    fn ok(&self, model: &str, method: &str, args: Value, kwargs: Value) -> Value {
        self.ek(model, method, args.clone(), kwargs)
            .unwrap_or_else(|e| panic!("{} {model}.{method}({args}) failed: {e:#}", self.v))
    }

    /// `POST /json/2/<model>/<method>` with a key.
    fn j2(&self, key: &str, model: &str, method: &str, body: Value) -> Answer {
        self.c.post_json(
            &format!("/json/2/{model}/{method}"),
            &[("Authorization", format!("bearer {key}"))],
            &body,
        )
    }

    fn loc(&self, name: &str) -> i64 {
        self.odoo
            .snapshot()
            .location_id(name)
            .unwrap_or_else(|| panic!("no location {name}"))
    }

    fn product(&self, barcode: &str) -> i64 {
        self.odoo.snapshot().product_id(barcode).unwrap()
    }

    fn picking_type(&self, code: &str) -> i64 {
        let r = self.ok(
            "stock.picking.type",
            "search",
            json!([[["code", "=", code]]]),
            json!({"limit": 1}),
        );
        r[0].as_i64().unwrap()
    }

    /// The line quantity field of the version.
    fn qf(&self) -> &'static str {
        if self.v == Version::V16 {
            "qty_done"
        } else {
            "quantity"
        }
    }

    /// Create a picking of one move.
    fn picking(
        &self,
        code: &str,
        src: &str,
        dest: &str,
        origin: &str,
        product: i64,
        qty: f64,
    ) -> i64 {
        let (src, dest) = (self.loc(src), self.loc(dest));
        let mut mv = json!({"product_id": product, "product_uom_qty": qty, "product_uom": 1,
                            "location_id": src, "location_dest_id": dest});
        if self.v != Version::V19 {
            mv["name"] = json!("edge move");
        }
        let r = self.ok(
            "stock.picking",
            "create",
            json!([{"picking_type_id": self.picking_type(code), "location_id": src,
                    "location_dest_id": dest, "origin": origin, "move_ids": [[0, 0, mv]]}]),
            json!({}),
        );
        r.as_i64().unwrap()
    }

    fn receipt(&self, origin: &str, product: i64, qty: f64) -> i64 {
        self.picking(
            "incoming",
            "Partners/Vendors",
            "WH/Stock",
            origin,
            product,
            qty,
        )
    }

    fn confirm(&self, pick: i64) {
        assert_eq!(
            self.ok(
                "stock.picking",
                "action_confirm",
                json!([[pick]]),
                json!({})
            ),
            json!(true)
        );
    }

    fn moves(&self, pick: i64) -> Vec<i64> {
        let r = self.ok(
            "stock.move",
            "search",
            json!([[["picking_id", "=", pick]]]),
            json!({}),
        );
        r.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    }

    fn lines(&self, pick: i64) -> Vec<Value> {
        let r = self.ok(
            "stock.move.line",
            "search_read",
            json!([[["picking_id", "=", pick]]]),
            json!({"fields": ["id", self.qf(), "lot_id", "lot_name", "location_id", "move_id"]}),
        );
        r.as_array().unwrap().clone()
    }

    fn write_line(&self, line: i64, vals: Value) {
        assert_eq!(
            self.ok("stock.move.line", "write", json!([[line], vals]), json!({})),
            json!(true)
        );
    }

    /// 17+: mark the moves picked.
    fn pick_all(&self, pick: i64) {
        if self.v != Version::V16 {
            let moves = self.moves(pick);
            self.ok(
                "stock.move",
                "write",
                json!([moves, {"picked": true}]),
                json!({}),
            );
        }
    }

    fn skip(pick: i64) -> Value {
        json!({"context": {"skip_backorder": true, "picking_ids_not_to_backorder": [pick],
                           "skip_immediate": true, "skip_expired": true, "skip_sms": true}})
    }

    fn validate(&self, pick: i64, kwargs: Value) -> Result<Value, RpcError> {
        self.ek("stock.picking", "button_validate", json!([[pick]]), kwargs)
    }

    fn state(&self, model: &str, id: i64) -> String {
        let r = self.ok(model, "read", json!([[id]]), json!({"fields": ["state"]}));
        r[0]["state"].as_str().unwrap().to_owned()
    }

    /// A confirmed receipt whose line has a lot (and expiry), quantity set, picked: ready to
    /// validate.
    fn receipt_ready(
        &self,
        origin: &str,
        product: i64,
        qty: f64,
        lot: Option<&str>,
        expiry: Option<&str>,
    ) -> i64 {
        let pick = self.receipt(origin, product, qty);
        self.confirm(pick);
        let line = self.lines(pick)[0]["id"].as_i64().unwrap();
        let mut vals = json!({self.qf(): qty});
        if let Some(l) = lot {
            vals["lot_name"] = json!(l);
        }
        if let Some(e) = expiry {
            vals["expiration_date"] = json!(e);
        }
        self.write_line(line, vals);
        self.pick_all(pick);
        pick
    }

    /// A validated receipt.
    fn received(&self, origin: &str, product: i64, qty: f64, lot: Option<&str>) -> i64 {
        let pick = self.receipt_ready(origin, product, qty, lot, Some("2030-01-01 00:00:00"));
        assert_eq!(self.validate(pick, T::skip(pick)).unwrap(), json!(true));
        pick
    }

    fn on_hand(&self, product: i64, location: &str, lot: Option<&str>) -> f64 {
        self.odoo
            .snapshot()
            .quantity(product, self.loc(location), lot)
    }
}

fn gauze(t: &T) -> i64 {
    t.product("5901234123457")
}

fn mask(t: &T) -> i64 {
    t.product("96385074")
}

// ---- capture replay ----------------------------------------------------------------------

/// The captures of real Odoo 16–19 (tests/data/odoo-captures).
fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/odoo-captures")
}

/// A check of an answer beyond the comparison with the capture.
type Check = Box<dyn Fn(&T, &Answer)>;

/// What to compare beyond status, content type and shape.
struct Expect {
    /// JSON pointers whose values must be equal in the capture and the answer.
    exact: Vec<String>,
    /// Compare the shape of the whole body (else only `exact` and `extra`).
    shape: bool,
    /// More checks on the answer.
    extra: Option<Check>,
}

impl Expect {
    fn shape() -> Expect {
        Expect {
            exact: Vec::new(),
            shape: true,
            extra: None,
        }
    }

    fn exact(mut self, pointers: &[&str]) -> Expect {
        self.exact.extend(pointers.iter().map(|p| (*p).to_owned()));
        self
    }

    fn then(mut self, f: impl Fn(&T, &Answer) + 'static) -> Expect {
        self.extra = Some(Box::new(f));
        self
    }
}

fn put(v: &mut Value, pointer: &str, new: Value) {
    let shown = v.to_string();
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in {shown}")) = new;
}

/// Same JSON types, same object keys, same array lengths, recursively.
fn same_shape(expected: &Value, actual: &Value, path: &str, errors: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Null, Value::Null)
        | (Value::Bool(_), Value::Bool(_))
        | (Value::String(_), Value::String(_)) => {}
        (Value::Number(e), Value::Number(a)) => {
            if e.is_f64() != a.is_f64() {
                errors.push(format!("{path}: number {e} vs {a}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                errors.push(format!("{path}: {} items vs {}", e.len(), a.len()));
            }
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                same_shape(x, y, &format!("{path}/{i}"), errors);
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            let ek: Vec<&String> = e.keys().collect();
            let ak: Vec<&String> = a.keys().collect();
            if ek != ak {
                errors.push(format!("{path}: keys {ek:?} vs {ak:?}"));
            }
            for (k, x) in e {
                if let Some(y) = a.get(k) {
                    same_shape(x, y, &format!("{path}/{k}"), errors);
                }
            }
        }
        _ => errors.push(format!("{path}: {expected} vs {actual}")),
    }
}

const JSONRPC_ERROR: &[&str] = &[
    "/error/code",
    "/error/message",
    "/error/data/name",
    "/error/data/message",
    "/error/data/arguments",
    "/error/data/context",
];
const JSON2_ERROR: &[&str] = &["/name", "/message", "/arguments", "/context"];

/// The product and lot of a captured duplicate-lot error ("LOT-<suffix>" of "Edge Lot
/// Product <suffix>"), created in the fake; the product id.
fn duplicate_lot_setup(t: &T, lot_name: &str) -> i64 {
    let suffix = lot_name.trim_start_matches("LOT-");
    let p = t.odoo.add_product(NewProduct {
        name: format!("Edge Lot Product {suffix}"),
        barcode: None,
        default_code: Some(format!("EDGE-{suffix}")),
        tracking: Tracking::Lot,
        use_expiration_date: true,
        uom: None,
    });
    t.ok(
        "stock.lot",
        "create",
        json!([{"name": lot_name, "product_id": p}]),
        json!({}),
    );
    p
}

/// A receipt of 5 Masks with 2 done: `button_validate` returns the backorder wizard.
fn partial_receipt(t: &T) -> i64 {
    let pick = t.receipt("partial", mask(t), 5.0);
    t.confirm(pick);
    let line = t.lines(pick)[0]["id"].as_i64().unwrap();
    t.write_line(line, json!({t.qf(): 2.0}));
    t.pick_all(pick);
    pick
}

/// The rows of a captured `load` with the fake's ids.
fn load_row(t: &T, fields: &Value, row: &Value) -> Value {
    let fields: Vec<&str> = fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let mut row = row.as_array().unwrap().clone();
    for (i, f) in fields.iter().enumerate() {
        let new = match *f {
            "picking_type_id/.id" => t.picking_type("incoming").to_string(),
            "location_id/.id" | "move_ids/location_id/.id" => t.loc("Partners/Vendors").to_string(),
            "location_dest_id/.id" | "move_ids/location_dest_id/.id" => {
                t.loc("WH/Stock").to_string()
            }
            "move_ids/product_id/.id" => gauze(t).to_string(),
            _ => continue,
        };
        row[i] = json!(new);
    }
    Value::Array(row)
}

/// Prepare the fake for a capture and adapt its request; what to compare.
fn prepare(
    t: &T,
    name: &str,
    req: &mut Value,
    headers: &mut Vec<(&'static str, String)>,
) -> Expect {
    let v = t.v;
    let is_jsonrpc = req["path"] == "/jsonrpc";
    if is_jsonrpc {
        let service = req["body"]["params"]["service"]
            .as_str()
            .unwrap()
            .to_owned();
        if service == "object" || req["body"]["params"]["method"] == "authenticate" {
            put(req, "/body/params/args/0", json!(t.odoo.database()));
        }
    }
    let admin = t.odoo.admin_key();
    let bot = t.odoo.bot_key();
    for (k, val) in headers.iter_mut() {
        if *k == "Authorization"
            && val.as_str() == "bearer <API_KEY>"
            && name != "json2_error_bad_key"
        {
            *val = format!("bearer {admin}");
        }
    }
    let path = req["path"].as_str().unwrap().to_owned();
    if path.starts_with("/json/2/")
        && !headers.iter().any(|(k, _)| *k == "Authorization")
        && name != "json2_error_no_auth"
    {
        let key = if name.starts_with("json2_bot_") {
            bot.clone()
        } else {
            admin.clone()
        };
        headers.push(("Authorization", format!("bearer {key}")));
    }
    let args = "/body/params/args";
    match name {
        "jsonrpc_common_version"
        | "jsonrpc_common_authenticate"
        | "jsonrpc_common_authenticate_bad"
        | "jsonrpc_config_settings_execute"
        | "jsonrpc_scrap_action_validate"
        | "jsonrpc_write_move_line"
        | "jsonrpc_action_confirm"
        | "jsonrpc_button_validate_receipt"
        | "jsonrpc_backorder_process_cancel" => {}
        _ => {}
    }
    match name {
        "jsonrpc_common_version"
        | "jsonrpc_common_authenticate"
        | "jsonrpc_common_authenticate_bad" => {
            Expect::shape().exact(&["/result", "/id", "/jsonrpc"])
        }
        "jsonrpc_action_confirm" => {
            let pick = t.receipt("edge-rcpt", gauze(t), 5.0);
            put(req, &format!("{args}/5"), json!([[pick]]));
            Expect::shape().exact(&["/result"]).then(move |t, _| {
                assert_eq!(t.state("stock.picking", pick), "assigned");
            })
        }
        "jsonrpc_backorder_process_cancel" => {
            let pick = partial_receipt(t);
            let action = t.validate(pick, json!({})).unwrap();
            let ctx = action["context"].clone();
            let w = t.ok(
                "stock.backorder.confirmation",
                "create",
                json!([{}]),
                json!({"context": ctx}),
            );
            put(req, &format!("{args}/5"), json!([[w]]));
            put(req, &format!("{args}/6/context"), ctx);
            Expect::shape().exact(&["/result"]).then(move |t, _| {
                assert_eq!(t.state("stock.picking", pick), "done");
                assert!(
                    t.odoo
                        .snapshot()
                        .pickings
                        .iter()
                        .all(|p| p.backorder_id.is_none())
                );
            })
        }
        "jsonrpc_button_validate_backorder_wizard" => {
            let pick = partial_receipt(t);
            put(req, &format!("{args}/5"), json!([[pick]]));
            Expect::shape()
                .exact(&[
                    "/result/name",
                    "/result/type",
                    "/result/view_mode",
                    "/result/res_model",
                    "/result/views/0/1",
                    "/result/view_id",
                    "/result/target",
                    "/result/context/default_show_transfers",
                ])
                .then(move |_, a| {
                    assert_eq!(
                        a.json["result"]["context"]["button_validate_picking_ids"],
                        json!([pick])
                    );
                    assert_eq!(
                        a.json["result"]["context"]["default_pick_ids"],
                        json!([[4, pick]])
                    );
                })
        }
        "jsonrpc_button_validate_immediate_wizard" => Expect::shape().exact(&[
            "/result/name",
            "/result/type",
            "/result/view_mode",
            "/result/res_model",
            "/result/views/0/1",
            "/result/view_id",
            "/result/target",
            "/result/context/default_show_transfers",
        ]),
        "jsonrpc_button_validate_on_done" => {
            let pick = t.received("done", mask(t), 1.0, None);
            put(req, &format!("{args}/5"), json!([[pick]]));
            if v == Version::V19 {
                Expect::shape().exact(&["/result"])
            } else {
                Expect::shape().exact(JSONRPC_ERROR)
            }
        }
        "jsonrpc_button_validate_receipt" => {
            let pick = t.receipt_ready(
                "r",
                gauze(t),
                5.0,
                Some("LOT-R"),
                Some("2027-11-24 03:26:48"),
            );
            put(req, &format!("{args}/5"), json!([[pick]]));
            put(
                req,
                &format!("{args}/6/context/picking_ids_not_to_backorder"),
                json!([pick]),
            );
            Expect::shape().exact(&["/result"]).then(move |t, _| {
                assert_eq!(t.state("stock.picking", pick), "done");
                assert_eq!(t.on_hand(gauze(t), "WH/Stock", Some("LOT-R")), 5.0);
            })
        }
        "jsonrpc_config_settings_execute" => {
            let w = t.ok(
                "res.config.settings",
                "create",
                json!([{"group_stock_multi_locations": true}]),
                json!({}),
            );
            put(req, &format!("{args}/5"), json!([[w]]));
            Expect::shape().exact(&["/result"])
        }
        "jsonrpc_create_product" => Expect::shape().then(|t, a| {
            let id = a.json["result"].as_i64().unwrap();
            let p = t.ok(
                "product.product",
                "read",
                json!([[id]]),
                json!({"fields": ["tracking", "use_expiration_date"]}),
            );
            assert_eq!(p[0]["tracking"], json!("lot"));
            assert_eq!(p[0]["use_expiration_date"], json!(true));
        }),
        "jsonrpc_create_receipt" => {
            let (vendors, stock, receipts) = (
                t.loc("Partners/Vendors"),
                t.loc("WH/Stock"),
                t.picking_type("incoming"),
            );
            let vals = format!("{args}/5/0");
            put(req, &format!("{vals}/picking_type_id"), json!(receipts));
            put(req, &format!("{vals}/location_id"), json!(vendors));
            put(req, &format!("{vals}/location_dest_id"), json!(stock));
            put(
                req,
                &format!("{vals}/move_ids/0/2/product_id"),
                json!(gauze(t)),
            );
            put(
                req,
                &format!("{vals}/move_ids/0/2/location_id"),
                json!(vendors),
            );
            put(
                req,
                &format!("{vals}/move_ids/0/2/location_dest_id"),
                json!(stock),
            );
            Expect::shape().then(|t, a| {
                let id = a.json["result"].as_i64().unwrap();
                assert_eq!(t.state("stock.picking", id), "draft");
                assert_eq!(t.moves(id).len(), 1);
            })
        }
        "jsonrpc_create_scrap" => {
            let stock = t.loc("WH/Stock");
            t.odoo
                .add_stock(gauze(t), stock, Some(("LOT-S", None)), 3.0);
            let lot = t.odoo.snapshot().lot(gauze(t), "LOT-S").unwrap().id;
            let vals = format!("{args}/5/0");
            put(req, &format!("{vals}/product_id"), json!(gauze(t)));
            put(req, &format!("{vals}/lot_id"), json!(lot));
            put(req, &format!("{vals}/location_id"), json!(stock));
            Expect::shape()
        }
        "jsonrpc_error_access_denied"
        | "jsonrpc_error_missing"
        | "jsonrpc_error_private_method"
        | "jsonrpc_error_unknown_model" => Expect::shape().exact(JSONRPC_ERROR),
        "jsonrpc_error_user" => {
            let pick = t.ok(
                "stock.picking",
                "create",
                json!([{"picking_type_id": t.picking_type("incoming")}]),
                json!({}),
            );
            put(req, &format!("{args}/5"), json!([[pick]]));
            Expect::shape().exact(JSONRPC_ERROR)
        }
        "jsonrpc_error_validation" => {
            let lot = req
                .pointer(&format!("{args}/5/0/name"))
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            let p = duplicate_lot_setup(t, &lot);
            put(req, &format!("{args}/5/0/product_id"), json!(p));
            Expect::shape().exact(JSONRPC_ERROR)
        }
        "jsonrpc_quant_apply_inventory" => {
            let stock = t.loc("WH/Stock");
            let q = t.ok(
                "stock.quant",
                "create",
                json!([{"product_id": mask(t), "location_id": stock, "inventory_quantity": 7.0}]),
                json!({"context": {"inventory_mode": true}}),
            );
            put(req, &format!("{args}/5"), json!([[q]]));
            Expect::shape().then(|t, a| {
                assert!(a.json.get("result").is_none(), "{}", a.text);
                assert_eq!(t.on_hand(mask(t), "WH/Stock", None), 7.0);
            })
        }
        "jsonrpc_scrap_action_validate" => {
            t.odoo.add_stock(mask(t), t.loc("WH/Stock"), None, 5.0);
            let s = t.ok("stock.scrap", "create", json!([{"product_id": mask(t), "scrap_qty": 1.0, "location_id": t.loc("WH/Stock")}]), json!({}));
            put(req, &format!("{args}/5"), json!([[s]]));
            Expect::shape().exact(&["/result"])
        }
        "jsonrpc_search_read_picking_types" => Expect::shape().then(move |_, a| {
            let got: Vec<Value> = a.json["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    json!([
                        r["name"],
                        r["code"],
                        r["use_create_lots"],
                        r["use_existing_lots"],
                        r["create_backorder"],
                        r["warehouse_id"]
                    ])
                })
                .collect();
            let mut want = vec![
                json!([
                    "Receipts",
                    "incoming",
                    true,
                    false,
                    "ask",
                    [1, "My Company"]
                ]),
                json!([
                    "Internal Transfers",
                    "internal",
                    false,
                    true,
                    "ask",
                    [1, "My Company"]
                ]),
                json!([
                    "Delivery Orders",
                    "outgoing",
                    false,
                    true,
                    "ask",
                    [1, "My Company"]
                ]),
            ];
            if v == Version::V16 {
                want.push(json!([
                    "Returns",
                    "incoming",
                    false,
                    true,
                    "ask",
                    [1, "My Company"]
                ]));
            }
            assert_eq!(got, want);
        }),
        "jsonrpc_write_move_line" => {
            let pick = t.receipt("w", gauze(t), 5.0);
            t.confirm(pick);
            let line = t.lines(pick)[0]["id"].as_i64().unwrap();
            put(req, &format!("{args}/5/0"), json!([line]));
            Expect::shape().exact(&["/result"]).then(move |t, _| {
                let l = &t.lines(pick)[0];
                assert_eq!(l[t.qf()], json!(5.0));
            })
        }
        "web_session_authenticate" => {
            put(req, "/body/params/db", json!(t.odoo.database()));
            Expect {
                exact: vec![
                    "/result/uid".into(),
                    "/result/is_admin".into(),
                    "/result/user_context".into(),
                    "/result/server_version_info".into(),
                    "/result/username".into(),
                ],
                shape: false,
                extra: Some(Box::new(|_, a| {
                    assert!(
                        a.headers
                            .get("set-cookie")
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .starts_with("session_id=")
                    );
                })),
            }
        }
        // ---- JSON-2 (19) ----
        "json2_backorder_wizard_create_empty" | "json2_backorder_wizard_process" => {
            let pick = partial_receipt(t);
            let action = t.validate(pick, json!({})).unwrap();
            put(req, "/body/context", action["context"].clone());
            if name.ends_with("process") {
                let w = t.ok(
                    "stock.backorder.confirmation",
                    "create",
                    json!([{}]),
                    json!({"context": action["context"]}),
                );
                put(req, "/body/ids", json!([w]));
                Expect::shape().exact(&[""]).then(move |t, _| {
                    assert_eq!(t.state("stock.picking", pick), "done");
                    let s = t.odoo.snapshot();
                    let back: Vec<_> = s
                        .pickings
                        .iter()
                        .filter(|p| p.backorder_id == Some(pick))
                        .collect();
                    assert_eq!(back.len(), 1);
                    assert_eq!(back[0].state, "assigned");
                })
            } else {
                Expect::shape()
            }
        }
        "json2_bot_check_object_reference_found" => {
            let load: Value = read_capture(v, "json2_bot_load_xmlid").0["body"].clone();
            let row = load_row(t, &load["fields"], &load["data"][0]);
            let a = t.j2(
                &bot,
                "stock.picking",
                "load",
                json!({"fields": load["fields"], "data": [row]}),
            );
            assert_eq!(a.status, 200, "{}", a.text);
            Expect::shape().exact(&["/0"])
        }
        "json2_bot_check_object_reference_missing" | "json2_bot_ir_model_data_search" => {
            Expect::shape().exact(JSON2_ERROR)
        }
        "json2_bot_load_xmlid"
        | "json2_load_xmlid_upsert"
        | "json2_load_xmlid_upsert_with_child_ids" => {
            let fields = req["body"]["fields"].clone();
            let row = load_row(t, &fields, &req["body"]["data"][0]);
            put(req, "/body/data/0", row);
            Expect::shape()
                .exact(&["/messages", "/nextrow"])
                .then(|t, a| {
                    let id = a.json["ids"][0].as_i64().unwrap();
                    assert_eq!(t.moves(id).len(), 1);
                })
        }
        "json2_button_validate_done" => {
            let pick = t.received("done", mask(t), 1.0, None);
            put(req, "/body/ids", json!([pick]));
            Expect::shape().exact(&[""])
        }
        "json2_button_validate_expiry_wizard" => {
            let pick = t.receipt_ready(
                "x",
                gauze(t),
                5.0,
                Some("LOT-OLD"),
                Some("2020-01-01 00:00:00"),
            );
            put(req, "/body/ids", json!([pick]));
            Expect::shape()
                .exact(&[
                    "/name",
                    "/type",
                    "/res_model",
                    "/view_mode",
                    "/views/0/1",
                    "/view_id",
                    "/target",
                    "/context/skip_backorder",
                    "/context/default_lot_ids",
                ])
                .then(move |_, a| {
                    assert_eq!(
                        a.json["context"]["default_picking_ids"],
                        json!([[6, 0, [pick]]])
                    );
                })
        }
        "json2_expiry_wizard_process" => {
            let pick = t.receipt_ready(
                "x",
                gauze(t),
                5.0,
                Some("LOT-OLD"),
                Some("2020-01-01 00:00:00"),
            );
            let action = t
                .validate(pick, json!({"context": {"skip_backorder": true}}))
                .unwrap();
            assert_eq!(action["res_model"], json!("expiry.picking.confirmation"));
            let w = t.j2(
                &admin,
                "expiry.picking.confirmation",
                "create",
                json!({"vals_list": [{}], "context": action["context"]}),
            );
            assert_eq!(w.status, 200, "{}", w.text);
            put(req, "/body/ids", w.json.clone());
            put(req, "/body/context", action["context"].clone());
            Expect::shape().exact(&[""]).then(move |t, _| {
                assert_eq!(t.state("stock.picking", pick), "done");
                let lot = t.odoo.snapshot().lot(gauze(t), "LOT-OLD").cloned().unwrap();
                assert_eq!(lot.expiration_date.as_deref(), Some("2020-01-01 00:00:00"));
            })
        }
        "json2_create" | "json2_search_count" => Expect::shape(),
        "json2_error_bad_key"
        | "json2_error_bad_kwarg"
        | "json2_error_body_not_object"
        | "json2_error_ids_on_model_method"
        | "json2_error_missing"
        | "json2_error_no_auth"
        | "json2_error_private"
        | "json2_error_unknown_method"
        | "json2_error_unknown_model" => Expect::shape().exact(JSON2_ERROR),
        "json2_error_duplicate_picking_name" => {
            let first = t.ok(
                "stock.picking",
                "create",
                json!([{"picking_type_id": 1}]),
                json!({}),
            );
            let n = t.ok(
                "stock.picking",
                "read",
                json!([[first]]),
                json!({"fields": ["name"]}),
            );
            assert_eq!(n[0]["name"], json!("WH/IN/00001"));
            Expect::shape().exact(JSON2_ERROR)
        }
        "json2_error_duplicate_xmlid" => {
            t.ok(
                "ir.model.data",
                "create",
                json!([req["body"]["vals_list"][0]]),
                json!({}),
            );
            Expect::shape().exact(JSON2_ERROR)
        }
        "json2_error_user" => {
            let pick = t.ok(
                "stock.picking",
                "create",
                json!([{"picking_type_id": 1}]),
                json!({}),
            );
            put(req, "/body/ids", json!([pick]));
            Expect::shape().exact(JSON2_ERROR)
        }
        "json2_error_validation" => {
            let lot = req["body"]["vals_list"][0]["name"]
                .as_str()
                .unwrap()
                .to_owned();
            let p = duplicate_lot_setup(t, &lot);
            put(req, "/body/vals_list/0/product_id", json!(p));
            Expect::shape().exact(JSON2_ERROR)
        }
        "json2_error_wrong_db"
        | "json2_fields_get"
        | "json2_get"
        | "json2_gs1_parse_barcode"
        | "json2_name_search"
        | "json2_read_missing_ids" => Expect::shape().exact(&[""]),
        "json2_read" | "json2_search_read" => {
            let pick = t.received("edge-rcpt-dccb8cd4", mask(t), 1.0, None);
            if name == "json2_read" {
                put(req, "/body/ids", json!([pick]));
            }
            Expect::shape().exact(&["/0/state"]).then(move |_, a| {
                assert_eq!(a.json[0]["id"], json!(pick));
            })
        }
        "json2_scrap_insufficient_wizard" => {
            let s = t.ok("stock.scrap", "create", json!([{"product_id": mask(t), "scrap_qty": 5.0, "location_id": t.loc("WH/Stock")}]), json!({}));
            let s = s.as_i64().unwrap();
            put(req, "/body/ids", json!([s]));
            Expect::shape()
                .exact(&[
                    "/view_mode",
                    "/res_model",
                    "/view_id",
                    "/type",
                    "/target",
                    "/context/default_quantity",
                    "/context/default_product_uom_name",
                ])
                .then(move |t, a| {
                    assert_eq!(
                        a.json["name"],
                        json!("Mask: Insufficient Quantity To Scrap")
                    );
                    assert_eq!(a.json["context"]["default_scrap_id"], json!(s));
                    assert_eq!(
                        a.json["context"]["default_location_id"],
                        json!(t.loc("WH/Stock"))
                    );
                    assert_eq!(t.state("stock.scrap", s), "draft");
                })
        }
        "json2_write" => {
            let p = t.ok("res.partner", "create", json!([{"name": "x"}]), json!({}));
            put(req, "/body/ids", json!([p]));
            Expect::shape().exact(&[""])
        }
        other => panic!("no expectation for capture {other}: add one"),
    }
}

/// A capture's request and response (the 16 immediate-wizard capture has only a description
/// of its request and the JSON-RPC body as response).
fn read_capture(v: Version, name: &str) -> (Value, Value) {
    let path = captures_dir()
        .join(v.major().to_string())
        .join(format!("{name}.json"));
    let c: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (c["request"].clone(), c["response"].clone())
}

/// Send a capture's request (prepared) to a fresh fake of its version and compare.
fn replay(v: Version, name: &str) {
    let t = T::new(v);
    let (mut req, mut resp) = read_capture(v, name);
    if req.is_string() {
        // "execute_kw stock.picking button_validate [[6]] (16.0, no qty_done set)"
        assert_eq!(name, "jsonrpc_button_validate_immediate_wizard");
        let pick = t.receipt("imm", mask(&t), 5.0);
        t.confirm(pick);
        req = json!({"method": "POST", "path": "/jsonrpc",
            "body": {"jsonrpc": "2.0", "method": "call", "id": 1,
                     "params": {"service": "object", "method": "execute_kw",
                                "args": ["x", 2, "admin", "stock.picking", "button_validate", [[pick]], {}]}}});
        resp =
            json!({"status": 200, "content_type": "application/json; charset=utf-8", "body": resp});
    }
    let mut headers: Vec<(&'static str, String)> = Vec::new();
    if let Some(h) = req["headers"].as_object() {
        for (k, val) in h {
            let k: &'static str = Box::leak(k.clone().into_boxed_str());
            headers.push((k, val.as_str().unwrap().to_owned()));
        }
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type", "application/json".into()));
    }
    let expect = prepare(&t, name, &mut req, &mut headers);
    let method = req["method"].as_str().unwrap_or("POST").to_owned();
    let body = match &req["body"] {
        Value::Null if method == "GET" => None,
        b => Some(b.to_string().into_bytes()),
    };
    let path = req["path"].as_str().unwrap();
    let a = t.c.send(&method, path, &headers, body).unwrap();
    let ctx = format!("{v} {name}: {}", a.text);
    assert_eq!(a.status, resp["status"].as_u64().unwrap() as u16, "{ctx}");
    if let Some(ct) = resp["content_type"].as_str() {
        assert_eq!(a.content_type, ct, "{ctx}");
    }
    if let Some(w) = resp.get("www_authenticate") {
        let got = a
            .headers
            .get("www-authenticate")
            .map(|h| h.to_str().unwrap().to_owned());
        match w.as_str() {
            None => assert!(got.is_none(), "{ctx}"),
            Some(want) => assert_eq!(got.as_deref().map(str::trim), Some(want.trim()), "{ctx}"),
        }
    }
    let expected = &resp["body"];
    if expected.is_string() && !a.content_type.starts_with("application/json") {
        assert_eq!(&a.text, expected.as_str().unwrap(), "{ctx}");
    } else {
        if expect.shape {
            let mut errors = Vec::new();
            same_shape(expected, &a.json, "", &mut errors);
            assert!(errors.is_empty(), "{ctx}\nshape: {errors:#?}");
        }
        for p in &expect.exact {
            assert_eq!(a.json.pointer(p), expected.pointer(p), "{ctx}\nat {p:?}");
        }
        // The order of the error fields (serde_json sorts keys; compare the raw texts).
        if let Some(data) = expected
            .pointer("/error/data")
            .or_else(|| expected.get("debug").map(|_| expected))
        {
            let _ = data;
            let order =
                |text: &str| text.find("\"debug\"").unwrap() < text.find("\"message\"").unwrap();
            let raw = std::fs::read_to_string(
                captures_dir()
                    .join(v.major().to_string())
                    .join(format!("{name}.json")),
            )
            .unwrap();
            assert_eq!(order(&a.text), order(&raw), "{ctx}: field order");
        }
    }
    if let Some(f) = &expect.extra {
        f(&t, &a);
    }
}

#[test]
fn every_capture_replays_against_a_fake_of_its_version() {
    let dir = captures_dir();
    let mut count = 0;
    let mut failed = Vec::new();
    for v in Version::ALL {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(v.major().to_string()))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".json")
                    .to_owned()
            })
            .collect();
        names.sort();
        for name in names {
            let outcome = std::panic::catch_unwind(|| replay(v, &name));
            if outcome.is_err() {
                failed.push(format!("{v} {name}"));
            }
            count += 1;
        }
    }
    assert!(
        failed.is_empty(),
        "captures that do not replay: {failed:#?}"
    );
    assert_eq!(count, 24 + 23 + 23 + 59, "captures replayed");
}

// ---- stock semantics, per version ----------------------------------------------------------

/// The error's name and message.
fn err(e: &RpcError) -> (String, String) {
    (
        e["name"].as_str().unwrap_or_default().to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn a_receipt_with_a_lot_creates_the_lot_with_its_expiry_and_the_quant_and_reuses_the_lot() {
    for v in Version::ALL {
        let t = T::new(v);
        let g = gauze(&t);
        let pick = t.receipt_ready(
            "edge-rcpt-1",
            g,
            5.0,
            Some("LOT-A"),
            Some("2030-06-30 00:00:00"),
        );
        assert_eq!(t.state("stock.picking", pick), "assigned", "{v}");
        assert_eq!(t.validate(pick, T::skip(pick)).unwrap(), json!(true), "{v}");
        assert_eq!(t.state("stock.picking", pick), "done", "{v}");
        let s = t.odoo.snapshot();
        let lot = s.lot(g, "LOT-A").unwrap_or_else(|| panic!("{v}: no lot"));
        assert_eq!(
            lot.expiration_date.as_deref(),
            Some("2030-06-30 00:00:00"),
            "{v}"
        );
        assert_eq!(t.on_hand(g, "WH/Stock", Some("LOT-A")), 5.0, "{v}");
        let line = &s.lines_of(s.moves_of(pick)[0].id)[0];
        assert_eq!(line.lot_id, Some(lot.id), "{v}");
        assert_eq!(line.quantity, 5.0, "{v}");
        assert_eq!(s.pickings_with_origin("edge-rcpt-1").len(), 1, "{v}");
        assert_eq!(s.moves_of(pick)[0].state, "done", "{v}");

        // The same lot name again: the lot is reused, not duplicated.
        t.received("edge-rcpt-2", g, 3.0, Some("LOT-A"));
        let s = t.odoo.snapshot();
        assert_eq!(
            s.lots
                .iter()
                .filter(|l| l.name == "LOT-A" && l.product_id == g)
                .count(),
            1,
            "{v}"
        );
        assert_eq!(t.on_hand(g, "WH/Stock", Some("LOT-A")), 8.0, "{v}");
        // Read back over RPC as the agent does (odoo-api.md §3.1 step 8).
        let lots = t.ok(
            "stock.lot",
            "search_read",
            json!([[["name", "=", "LOT-A"], ["product_id", "=", g]]]),
            json!({"fields": ["id", "expiration_date"]}),
        );
        assert_eq!(lots.as_array().unwrap().len(), 1, "{v}");
        assert_eq!(
            lots[0]["expiration_date"],
            json!("2030-06-30 00:00:00"),
            "{v}"
        );
    }
}

#[test]
fn lots_are_unique_per_product_and_tracked_products_need_one() {
    for v in Version::ALL {
        let t = T::new(v);
        let (g, syringe) = (gauze(&t), t.product("09506000134352"));
        t.ok(
            "stock.lot",
            "create",
            json!([{"name": "L1", "product_id": g}]),
            json!({}),
        );
        let e = t
            .ek(
                "stock.lot",
                "create",
                json!([{"name": "L1", "product_id": g}]),
                json!({}),
            )
            .unwrap_err();
        assert_eq!(err(&e).0, "odoo.exceptions.ValidationError", "{v}");
        assert!(err(&e).1.contains("L1"), "{v}: {e}");
        // Another product may use the same name.
        t.ok(
            "stock.lot",
            "create",
            json!([{"name": "L1", "product_id": syringe}]),
            json!({}),
        );

        // A tracked product without a lot is refused at validation; nothing changes.
        let pick = t.receipt_ready("no-lot", g, 2.0, None, None);
        let e = t.validate(pick, T::skip(pick)).unwrap_err();
        assert_eq!(err(&e).0, "odoo.exceptions.UserError", "{v}");
        assert!(err(&e).1.contains("Lot/Serial number"), "{v}: {e}");
        assert_eq!(t.state("stock.picking", pick), "assigned", "{v}");
        assert_eq!(t.on_hand(g, "WH/Stock", None), 0.0, "{v}");
    }
}

#[test]
fn fields_differ_per_version_as_on_real_servers() {
    for v in Version::ALL {
        let t = T::new(v);
        let (vendors, stock) = (t.loc("Partners/Vendors"), t.loc("WH/Stock"));
        let receipts = t.picking_type("incoming");
        let picking = |mv: Value| {
            t.ek(
                "stock.picking",
                "create",
                json!([{"picking_type_id": receipts, "location_id": vendors,
                        "location_dest_id": stock, "move_ids": [[0, 0, mv]]}]),
                json!({}),
            )
        };
        let base = json!({"product_id": mask(&t), "product_uom_qty": 1.0, "product_uom": 1,
                          "location_id": vendors, "location_dest_id": stock});
        let mut named = base.clone();
        named["name"] = json!("edge move");
        if v == Version::V19 {
            // `stock.move.name` is gone in 19.
            let e = picking(named).unwrap_err();
            assert_eq!(err(&e).0, "builtins.ValueError", "{v}");
            assert!(err(&e).1.contains("'name'"), "{v}: {e}");
            picking(base).unwrap();
        } else {
            // … and required before.
            let e = picking(base).unwrap_err();
            assert_eq!(err(&e).0, "odoo.exceptions.ValidationError", "{v}");
            assert!(err(&e).1.contains("(name)"), "{v}: {e}");
            picking(named).unwrap();
        }
        // Nothing of the failed creations was kept.
        assert_eq!(t.odoo.snapshot().pickings.len(), 1, "{v}");

        let pick = t.receipt("fields", mask(&t), 1.0);
        t.confirm(pick);
        let line = t.lines(pick)[0]["id"].as_i64().unwrap();
        let mv = t.moves(pick)[0];
        let wrong_qty = if v == Version::V16 {
            "quantity"
        } else {
            "qty_done"
        };
        let e = t
            .ek(
                "stock.move.line",
                "write",
                json!([[line], {wrong_qty: 1.0}]),
                json!({}),
            )
            .unwrap_err();
        assert_eq!(err(&e).0, "builtins.ValueError", "{v} {wrong_qty}");
        let picked = t.ek(
            "stock.move",
            "write",
            json!([[mv], {"picked": true}]),
            json!({}),
        );
        if v == Version::V16 {
            assert_eq!(err(&picked.unwrap_err()).0, "builtins.ValueError", "{v}");
        } else {
            assert_eq!(picked.unwrap(), json!(true), "{v}");
            assert!(t.odoo.snapshot().moves_of(pick)[0].picked, "{v}");
        }
        let without_package = t.ek(
            "stock.picking",
            "read",
            json!([[pick]]),
            json!({"fields": ["move_ids_without_package"]}),
        );
        assert_eq!(without_package.is_err(), v == Version::V19, "{v}");

        // The storable flag: `detailed_type` up to 17, `is_storable` from 18.
        let (storable, consumable) = if v <= Version::V17 {
            (
                json!({"name": "Stored", "detailed_type": "product", "tracking": "none"}),
                json!({"name": "Consumed", "detailed_type": "consu", "tracking": "none"}),
            )
        } else {
            (
                json!({"name": "Stored", "type": "consu", "is_storable": true, "tracking": "none"}),
                json!({"name": "Consumed", "type": "consu", "is_storable": false, "tracking": "none"}),
            )
        };
        let wrong = if v <= Version::V17 {
            json!({"name": "X", "is_storable": true})
        } else {
            json!({"name": "X", "detailed_type": "product"})
        };
        let e = t
            .ek("product.product", "create", json!([wrong]), json!({}))
            .unwrap_err();
        assert_eq!(err(&e).0, "builtins.ValueError", "{v}");
        let stored = t
            .ok("product.product", "create", json!([storable]), json!({}))
            .as_i64()
            .unwrap();
        let consumed = t
            .ok("product.product", "create", json!([consumable]), json!({}))
            .as_i64()
            .unwrap();
        t.received("stored", stored, 4.0, None);
        t.received("consumed", consumed, 4.0, None);
        assert_eq!(t.on_hand(stored, "WH/Stock", None), 4.0, "{v}");
        assert_eq!(t.on_hand(consumed, "WH/Stock", None), 0.0, "{v}");
        assert!(
            t.odoo
                .snapshot()
                .quants
                .iter()
                .all(|q| q.product_id != consumed),
            "{v}"
        );
    }
}

/// A confirmed receipt of 5 Masks, nothing set by hand.
fn untouched_receipt(t: &T, origin: &str) -> i64 {
    let pick = t.receipt(origin, mask(t), 5.0);
    t.confirm(pick);
    pick
}

#[test]
fn validating_without_quantities_asks_for_an_immediate_transfer_on_16_only() {
    for v in Version::ALL {
        let t = T::new(v);
        let pick = untouched_receipt(&t, "imm");
        let r = t.validate(pick, json!({})).unwrap();
        if v == Version::V16 {
            assert_eq!(r["res_model"], json!("stock.immediate.transfer"));
            assert_eq!(t.state("stock.picking", pick), "assigned");
            let ctx = r["context"].clone();
            assert_eq!(ctx["button_validate_picking_ids"], json!([pick]));
            let w = t.ok(
                "stock.immediate.transfer",
                "create",
                json!([{}]),
                json!({"context": ctx}),
            );
            assert_eq!(
                t.ok(
                    "stock.immediate.transfer",
                    "process",
                    json!([[w]]),
                    json!({"context": ctx})
                ),
                json!(true)
            );
            // skip_immediate instead: no quantity is done, so the backorder wizard comes next.
            let other = untouched_receipt(&t, "imm-skip");
            let r = t
                .validate(other, json!({"context": {"skip_immediate": true}}))
                .unwrap();
            assert_eq!(r["res_model"], json!("stock.backorder.confirmation"));
            assert_eq!(t.state("stock.picking", other), "assigned");
        } else {
            // 17+: the reserved quantity is the quantity; all moves get picked.
            assert_eq!(r, json!(true), "{v}");
        }
        assert_eq!(t.state("stock.picking", pick), "done", "{v}");
        assert_eq!(t.on_hand(mask(&t), "WH/Stock", None), 5.0, "{v}");
    }
}

#[test]
fn the_16_immediate_wizard_created_with_pick_ids_only_returns_the_next_wizard() {
    let t = T::new(Version::V16);
    let pick = untouched_receipt(&t, "imm");
    let r = t.validate(pick, json!({})).unwrap();
    let ctx = r["context"].clone();
    // odoo-api.md §3.4 pitfall: pick_ids in the values suppress the lines, so `process`
    // only calls button_validate again, which returns the next wizard (backorder).
    let w = t.ok(
        "stock.immediate.transfer",
        "create",
        json!([{"pick_ids": [[4, pick]]}]),
        json!({"context": ctx}),
    );
    let again = t
        .ok(
            "stock.immediate.transfer",
            "process",
            json!([[w]]),
            json!({"context": ctx}),
        )
        .clone();
    assert_eq!(again["res_model"], json!("stock.backorder.confirmation"));
    assert_eq!(t.state("stock.picking", pick), "assigned");
    assert_eq!(t.lines(pick)[0]["qty_done"], json!(0.0));
}

#[test]
fn partial_quantities_ask_for_a_backorder_unless_the_context_decides() {
    for v in Version::ALL {
        let t = T::new(v);
        let m = mask(&t);

        // The wizard, then "process": done with 2, a backorder for 3.
        let pick = partial_receipt(&t);
        let r = t.validate(pick, json!({})).unwrap();
        assert_eq!(r["res_model"], json!("stock.backorder.confirmation"), "{v}");
        assert_eq!(r["name"], json!("Create Backorder?"), "{v}");
        assert_eq!(r["context"]["default_pick_ids"], json!([[4, pick]]), "{v}");
        assert_eq!(t.state("stock.picking", pick), "assigned", "{v}");
        let ctx = r["context"].clone();
        let w = t.ok(
            "stock.backorder.confirmation",
            "create",
            json!([{}]),
            json!({"context": ctx}),
        );
        let done = t.ok(
            "stock.backorder.confirmation",
            "process",
            json!([[w]]),
            json!({"context": ctx}),
        );
        assert_eq!(done, json!(true), "{v}");
        let s = t.odoo.snapshot();
        let p = s.pickings.iter().find(|p| p.id == pick).unwrap();
        assert_eq!(p.state, "done", "{v}");
        let back: Vec<_> = s
            .pickings
            .iter()
            .filter(|p| p.backorder_id == Some(pick))
            .collect();
        assert_eq!(back.len(), 1, "{v}");
        assert_eq!(back[0].origin.as_deref(), Some("partial"), "{v}");
        assert_eq!(s.moves_of(back[0].id)[0].product_uom_qty, 3.0, "{v}");
        assert_eq!(t.on_hand(m, "WH/Stock", None), 2.0, "{v}");

        // "No backorder": the rest is cancelled.
        let pick = partial_receipt(&t);
        let ctx = t.validate(pick, json!({})).unwrap()["context"].clone();
        let w = t.ok(
            "stock.backorder.confirmation",
            "create",
            json!([{}]),
            json!({"context": ctx}),
        );
        t.ok(
            "stock.backorder.confirmation",
            "process_cancel_backorder",
            json!([[w]]),
            json!({"context": ctx}),
        );
        let s = t.odoo.snapshot();
        assert!(
            s.pickings.iter().all(|p| p.backorder_id != Some(pick)),
            "{v}"
        );
        assert_eq!(t.state("stock.picking", pick), "done", "{v}");
        assert_eq!(t.on_hand(m, "WH/Stock", None), 4.0, "{v}");

        // skip_backorder alone: a backorder without asking.
        let pick = partial_receipt(&t);
        let r = t
            .validate(pick, json!({"context": {"skip_backorder": true}}))
            .unwrap();
        assert_eq!(r, json!(true), "{v}");
        let s = t.odoo.snapshot();
        assert_eq!(
            s.pickings
                .iter()
                .filter(|p| p.backorder_id == Some(pick))
                .count(),
            1,
            "{v}"
        );

        // skip_backorder + picking_ids_not_to_backorder: no wizard, no backorder.
        let pick = partial_receipt(&t);
        assert_eq!(t.validate(pick, T::skip(pick)).unwrap(), json!(true), "{v}");
        let s = t.odoo.snapshot();
        assert!(
            s.pickings.iter().all(|p| p.backorder_id != Some(pick)),
            "{v}"
        );
        assert_eq!(t.on_hand(m, "WH/Stock", None), 8.0, "{v}");
    }
}

#[test]
fn an_expired_lot_asks_for_confirmation_unless_skipped() {
    for v in Version::ALL {
        let t = T::new(v);
        let g = gauze(&t);
        let pick = t.receipt_ready("old", g, 5.0, Some("LOT-OLD"), Some("2020-01-01 00:00:00"));
        let r = t
            .validate(pick, json!({"context": {"skip_backorder": true}}))
            .unwrap();
        assert_eq!(r["res_model"], json!("expiry.picking.confirmation"), "{v}");
        assert_eq!(t.state("stock.picking", pick), "assigned", "{v}");
        let ctx = r["context"].clone();
        let w = t.ok(
            "expiry.picking.confirmation",
            "create",
            json!([{}]),
            json!({"context": ctx}),
        );
        assert_eq!(
            t.ok(
                "expiry.picking.confirmation",
                "process",
                json!([[w]]),
                json!({"context": ctx})
            ),
            json!(true),
            "{v}"
        );
        assert_eq!(t.state("stock.picking", pick), "done", "{v}");

        let pick = t.receipt_ready(
            "old-2",
            g,
            1.0,
            Some("LOT-OLD-2"),
            Some("2020-01-01 00:00:00"),
        );
        assert_eq!(t.validate(pick, T::skip(pick)).unwrap(), json!(true), "{v}");
        assert_eq!(t.on_hand(g, "WH/Stock", None), 6.0, "{v}");
    }
}

#[test]
fn validating_a_done_picking_fails_up_to_18_and_is_a_no_op_on_19() {
    for v in Version::ALL {
        let t = T::new(v);
        let pick = t.received("twice", mask(&t), 2.0, None);
        let again = t.validate(pick, T::skip(pick));
        if v == Version::V19 {
            assert_eq!(again.unwrap(), json!(true));
        } else {
            let e = again.unwrap_err();
            assert_eq!(err(&e).0, "odoo.exceptions.UserError", "{v}");
            assert!(
                err(&e)
                    .1
                    .starts_with("You cannot validate a transfer if no quantities"),
                "{v}: {e}"
            );
        }
        assert_eq!(t.on_hand(mask(&t), "WH/Stock", None), 2.0, "{v}");
    }
}

#[test]
fn transfers_reserve_fefo_take_the_scanned_lot_and_consumption_leaves_stock() {
    for v in Version::ALL {
        let t = T::new(v);
        let g = gauze(&t);
        let (shelf1, shelf2) = (t.loc("WH/Stock/Shelf 1"), t.loc("WH/Stock/Shelf 2"));
        t.odoo.add_stock(
            g,
            shelf1,
            Some(("LOT-LATE", Some("2031-01-01 00:00:00"))),
            4.0,
        );
        t.odoo.add_stock(
            g,
            shelf1,
            Some(("LOT-SOON", Some("2029-01-01 00:00:00"))),
            4.0,
        );
        let late = t.odoo.snapshot().lot(g, "LOT-LATE").unwrap().id;
        let pick = t.picking(
            "internal",
            "WH/Stock/Shelf 1",
            "WH/Stock/Shelf 2",
            "move-1",
            g,
            2.0,
        );
        t.confirm(pick);
        if v == Version::V16 {
            t.ok("stock.picking", "action_assign", json!([[pick]]), json!({}));
        }
        assert_eq!(t.state("stock.picking", pick), "assigned", "{v}");
        let lines = t.lines(pick);
        assert_eq!(lines.len(), 1, "{v}");
        // FEFO: the lot that expires first is reserved …
        assert_eq!(lines[0]["lot_id"][1], json!("LOT-SOON"), "{v}");
        let reserved = &t.odoo.snapshot().quants;
        assert_eq!(
            reserved.iter().map(|q| q.reserved_quantity).sum::<f64>(),
            2.0,
            "{v}"
        );
        // … the agent forces the scanned one.
        t.write_line(
            lines[0]["id"].as_i64().unwrap(),
            json!({"lot_id": late, t.qf(): 2.0}),
        );
        t.pick_all(pick);
        assert_eq!(t.validate(pick, T::skip(pick)).unwrap(), json!(true), "{v}");
        let s = t.odoo.snapshot();
        assert_eq!(s.quantity(g, shelf1, Some("LOT-LATE")), 2.0, "{v}");
        assert_eq!(s.quantity(g, shelf1, Some("LOT-SOON")), 4.0, "{v}");
        assert_eq!(s.quantity(g, shelf2, Some("LOT-LATE")), 2.0, "{v}");
        assert!(s.quants.iter().all(|q| q.reserved_quantity == 0.0), "{v}");

        // Consumption: a picking to a production location.
        let use_ = t.picking(
            "internal",
            "WH/Stock/Shelf 2",
            "Virtual Locations/Consumption",
            "use-1",
            g,
            1.5,
        );
        t.confirm(use_);
        if v == Version::V16 {
            t.ok("stock.picking", "action_assign", json!([[use_]]), json!({}));
        }
        let line = t.lines(use_)[0]["id"].as_i64().unwrap();
        t.write_line(line, json!({"lot_id": late, t.qf(): 1.5}));
        t.pick_all(use_);
        assert_eq!(t.validate(use_, T::skip(use_)).unwrap(), json!(true), "{v}");
        let s = t.odoo.snapshot();
        assert_eq!(s.quantity(g, shelf2, Some("LOT-LATE")), 0.5, "{v}");
        let consumption = s.location_id("Virtual Locations/Consumption").unwrap();
        assert_eq!(s.quantity(g, consumption, Some("LOT-LATE")), 1.5, "{v}");

        // More than on hand is not refused: the quant goes negative (odoo-api.md §3.2).
        let over = t.picking(
            "internal",
            "WH/Stock/Shelf 2",
            "Virtual Locations/Consumption",
            "use-2",
            g,
            3.0,
        );
        t.confirm(over);
        let mv = t.moves(over)[0];
        // Whatever was reserved goes; one line of the scanned lot with the whole quantity.
        let reserved: Vec<Value> = t.lines(over).iter().map(|l| l["id"].clone()).collect();
        if !reserved.is_empty() {
            t.ok("stock.move.line", "unlink", json!([reserved]), json!({}));
        }
        t.ok(
            "stock.move.line",
            "create",
            json!([{"move_id": mv, "picking_id": over, "product_id": g, "product_uom_id": 1,
                    "lot_id": late, t.qf(): 3.0, "location_id": shelf2,
                    "location_dest_id": consumption}]),
            json!({}),
        );
        assert_eq!(t.lines(over).len(), 1, "{v}");
        t.pick_all(over);
        assert_eq!(t.validate(over, T::skip(over)).unwrap(), json!(true), "{v}");
        assert_eq!(
            t.odoo.snapshot().quantity(g, shelf2, Some("LOT-LATE")),
            -2.5,
            "{v}"
        );
    }
}

#[test]
fn scraps_move_stock_to_the_scrap_location_or_return_the_insufficient_quantity_wizard() {
    for v in Version::ALL {
        let t = T::new(v);
        let g = gauze(&t);
        let stock = t.loc("WH/Stock");
        t.odoo.add_stock(g, stock, Some(("LOT-S", None)), 3.0);
        let lot = t.odoo.snapshot().lot(g, "LOT-S").unwrap().id;
        let s = t
            .ok(
                "stock.scrap",
                "create",
                json!([{"product_id": g, "lot_id": lot, "scrap_qty": 1.0, "product_uom_id": 1,
                        "location_id": stock, "origin": "evt-scrap-1"}]),
                json!({}),
            )
            .as_i64()
            .unwrap();
        assert_eq!(t.state("stock.scrap", s), "draft", "{v}");
        assert_eq!(
            t.ok("stock.scrap", "action_validate", json!([[s]]), json!({})),
            json!(true),
            "{v}"
        );
        let snap = t.odoo.snapshot();
        let scrap = &snap.scraps_with_origin("evt-scrap-1")[0];
        assert_eq!(scrap.state, "done", "{v}");
        assert_eq!(scrap.name, "SP/00001", "{v}");
        assert_eq!(snap.quantity(g, stock, Some("LOT-S")), 2.0, "{v}");
        let scrap_location = snap
            .locations
            .iter()
            .find(|l| l.id == scrap.scrap_location_id)
            .unwrap();
        assert_eq!(scrap_location.usage, "inventory", "{v}");
        assert_eq!(
            snap.quantity(g, scrap.scrap_location_id, Some("LOT-S")),
            1.0,
            "{v}"
        );
        let moves = t.ok(
            "stock.scrap",
            "read",
            json!([[s]]),
            json!({"fields": [if v == Version::V16 { "move_id" } else { "move_ids" }]}),
        );
        assert_ne!(
            moves[0][if v == Version::V16 {
                "move_id"
            } else {
                "move_ids"
            }],
            json!(false),
            "{v}"
        );

        // Not enough of the lot there: the wizard, nothing done; do_scrap forces it.
        let s2 = t
            .ok(
                "stock.scrap",
                "create",
                json!([{"product_id": g, "lot_id": lot, "scrap_qty": 5.0,
                        "location_id": stock, "origin": "evt-scrap-2"}]),
                json!({}),
            )
            .as_i64()
            .unwrap();
        let r = t.ok("stock.scrap", "action_validate", json!([[s2]]), json!({}));
        assert_eq!(
            r["res_model"],
            json!("stock.warn.insufficient.qty.scrap"),
            "{v}"
        );
        assert_eq!(r["context"]["default_scrap_id"], json!(s2), "{v}");
        assert_eq!(t.state("stock.scrap", s2), "draft", "{v}");
        assert_eq!(
            t.ok("stock.scrap", "do_scrap", json!([[s2]]), json!({})),
            json!(true),
            "{v}"
        );
        assert_eq!(t.state("stock.scrap", s2), "done", "{v}");
        assert_eq!(
            t.odoo.snapshot().quantity(g, stock, Some("LOT-S")),
            -3.0,
            "{v}"
        );
    }
}

#[test]
fn an_inventory_adjustment_sets_the_count_and_returns_nothing() {
    for v in Version::ALL {
        let t = T::new(v);
        let m = mask(&t);
        let stock = t.loc("WH/Stock");
        t.odoo.add_stock(m, stock, None, 10.0);
        let q = t.ok(
            "stock.quant",
            "search_read",
            json!([[["product_id", "=", m], ["location_id", "=", stock]]]),
            json!({"fields": ["id", "quantity"]}),
        );
        assert_eq!(q[0]["quantity"], json!(10.0), "{v}");
        let id = q[0]["id"].as_i64().unwrap();
        let inv = json!({"context": {"inventory_mode": true}});
        t.ok(
            "stock.quant",
            "write",
            json!([[id], {"inventory_quantity": 7.0}]),
            inv.clone(),
        );
        let a =
            t.c.jsonrpc(json!({"service": "object", "method": "execute_kw",
            "args": [t.odoo.database(), 2, "admin", "stock.quant", "action_apply_inventory",
                     [[id]], inv]}));
        assert!(a.json.get("result").is_none(), "{v}: {}", a.text);
        assert!(a.json.get("error").is_none(), "{v}: {}", a.text);
        assert_eq!(t.on_hand(m, "WH/Stock", None), 7.0, "{v}");
        // Editing the quantity directly is refused.
        let e = t
            .ek(
                "stock.quant",
                "write",
                json!([[id], {"quantity": 1.0}]),
                json!({}),
            )
            .unwrap_err();
        assert_eq!(err(&e).0, "odoo.exceptions.UserError", "{v}");
    }
}

// ---- external ids, load, access rights ------------------------------------------------------

/// `stock.picking.load` of a receipt of one Gauze move with external id `edge_agent.<evt>`
/// (and `<evt>_m1` on the move when `child_xmlid`), as the current user.
fn load_receipt(t: &T, evt: &str, child_xmlid: bool, qty: f64) -> Value {
    let mut fields = vec![
        "id",
        "picking_type_id/.id",
        "location_id/.id",
        "location_dest_id/.id",
        "origin",
        "move_ids/product_id/.id",
        "move_ids/product_uom_qty",
        "move_ids/location_id/.id",
        "move_ids/location_dest_id/.id",
    ];
    let (vendors, stock) = (
        t.loc("Partners/Vendors").to_string(),
        t.loc("WH/Stock").to_string(),
    );
    let mut row = vec![
        format!("edge_agent.{evt}"),
        t.picking_type("incoming").to_string(),
        vendors.clone(),
        stock.clone(),
        evt.to_owned(),
        gauze(t).to_string(),
        qty.to_string(),
        vendors,
        stock,
    ];
    if child_xmlid {
        fields.push("move_ids/id");
        row.push(format!("edge_agent.{evt}_m1"));
    }
    if t.v != Version::V19 {
        fields.push("move_ids/name");
        row.push("edge receipt".into());
    }
    t.ok("stock.picking", "load", json!([fields, [row]]), json!({}))
}

#[test]
fn load_creates_a_picking_and_its_moves_with_external_ids_once() {
    for v in Version::ALL {
        let t = T::new(v);
        t.as_bot();
        let r = load_receipt(&t, "evt_1", true, 5.0);
        assert_eq!(r["messages"], json!([]), "{v}");
        assert_eq!(r["nextrow"], json!(0), "{v}");
        let pick = r["ids"][0].as_i64().unwrap();
        let s = t.odoo.snapshot();
        assert_eq!(
            s.xmlid("edge_agent.evt_1"),
            Some(("stock.picking", pick)),
            "{v}"
        );
        let mv = s.moves_of(pick)[0].id;
        assert_eq!(
            s.xmlid("edge_agent.evt_1_m1"),
            Some(("stock.move", mv)),
            "{v}"
        );
        assert_eq!(s.pickings_with_origin("evt_1").len(), 1, "{v}");

        // Replayed: the same records, nothing new.
        let again = load_receipt(&t, "evt_1", true, 5.0);
        assert_eq!(again["ids"], json!([pick]), "{v}");
        let s2 = t.odoo.snapshot();
        assert_eq!(s2.pickings.len(), 1, "{v}");
        assert_eq!(s2.moves.len(), 1, "{v}");

        // The lookup any user may do.
        assert_eq!(
            t.ok(
                "ir.model.data",
                "check_object_reference",
                json!(["edge_agent", "evt_1"]),
                json!({})
            ),
            json!(["stock.picking", pick]),
            "{v}"
        );

        // Without external ids on the children every replay appends a move.
        let r = load_receipt(&t, "evt_2", false, 1.0);
        let pick2 = r["ids"][0].as_i64().unwrap();
        load_receipt(&t, "evt_2", false, 1.0);
        assert_eq!(t.odoo.snapshot().moves_of(pick2).len(), 2, "{v}");

        // The bot runs the rest of the receipt (odoo-api.md §4 state machine).
        t.confirm(pick);
        let line = t.lines(pick)[0]["id"].as_i64().unwrap();
        t.write_line(
            line,
            json!({"lot_name": "LOT-X", t.qf(): 5.0, "expiration_date": "2031-01-01 00:00:00"}),
        );
        t.pick_all(pick);
        assert_eq!(t.validate(pick, T::skip(pick)).unwrap(), json!(true), "{v}");
        assert_eq!(t.state("stock.picking", pick), "done", "{v}");
        assert_eq!(t.on_hand(gauze(&t), "WH/Stock", Some("LOT-X")), 5.0, "{v}");

        // Replaying the load after validation is refused, with HTTP 200, and changes nothing.
        let late = load_receipt(&t, "evt_1", true, 5.0);
        assert_eq!(late["ids"], json!(false), "{v}");
        assert_eq!(
            late["messages"][0]["message"],
            json!("Changing the operation type of this record is forbidden at this point."),
            "{v}"
        );
        assert_eq!(late["messages"][0]["type"], json!("error"), "{v}");
        assert_eq!(t.state("stock.picking", pick), "done", "{v}");
    }
}

#[test]
fn a_failing_load_row_creates_nothing() {
    for v in Version::ALL {
        let t = T::new(v);
        t.as_bot();
        let mut fields = vec![
            "id",
            "picking_type_id/.id",
            "origin",
            "move_ids/id",
            "move_ids/product_id/.id",
            "move_ids/product_uom_qty",
        ];
        let mut row = vec![
            "edge_agent.evt_bad".to_owned(),
            t.picking_type("incoming").to_string(),
            "evt_bad".into(),
            "edge_agent.evt_bad_m1".into(),
            "999999".into(),
            "1".into(),
        ];
        if v != Version::V19 {
            fields.push("move_ids/name");
            row.push("edge".into());
        }
        let r = t.ok("stock.picking", "load", json!([fields, [row]]), json!({}));
        assert_eq!(r["ids"], json!(false), "{v}");
        let msg = r["messages"][0]["message"].as_str().unwrap();
        assert!(msg.contains("999999"), "{v}: {msg}");
        let s = t.odoo.snapshot();
        assert!(s.pickings.is_empty(), "{v}");
        assert!(s.xmlid("edge_agent.evt_bad").is_none(), "{v}");
        assert!(s.xmlid("edge_agent.evt_bad_m1").is_none(), "{v}");
    }
}

#[test]
fn the_inventory_bot_may_not_touch_external_ids_directly_and_unknown_ones_raise_value_error() {
    for v in Version::ALL {
        let t = T::new(v);
        t.as_bot();
        for (method, args) in [
            ("search_read", json!([[["module", "=", "edge_agent"]]])),
            (
                "create",
                json!([{"module": "edge_agent", "name": "evt_9", "model": "stock.picking", "res_id": 1}]),
            ),
        ] {
            let e = t.ek("ir.model.data", method, args, json!({})).unwrap_err();
            assert_eq!(err(&e).0, "odoo.exceptions.AccessError", "{v} {method}");
            assert!(
                err(&e).1.contains("'Model Data' (ir.model.data) records"),
                "{v}: {e}"
            );
        }
        let e = t
            .ek(
                "ir.model.data",
                "check_object_reference",
                json!(["edge_agent", "evt_nope"]),
                json!({}),
            )
            .unwrap_err();
        assert_eq!(
            err(&e),
            (
                "builtins.ValueError".to_owned(),
                "External ID not found in the system: edge_agent.evt_nope".to_owned()
            ),
            "{v}"
        );
        if v == Version::V19 {
            let bot = t.odoo.bot_key();
            let a = t.j2(
                &bot,
                "ir.model.data",
                "check_object_reference",
                json!({"module": "edge_agent", "xml_id": "evt_nope"}),
            );
            assert_eq!(a.status, 500);
            assert_eq!(a.json["name"], json!("builtins.ValueError"));
            let a = t.j2(
                &bot,
                "ir.model.data",
                "search_read",
                json!({"domain": [], "fields": ["name"]}),
            );
            assert_eq!(a.status, 403);
            assert_eq!(a.json["name"], json!("odoo.exceptions.AccessError"));
        }
    }
}

#[test]
fn a_duplicate_external_id_is_a_validation_error() {
    for v in Version::ALL {
        let t = T::new(v);
        let pick = t.receipt("evt_dup", mask(&t), 1.0);
        let vals = json!({"module": "edge_agent", "name": "evt_dup", "model": "stock.picking",
                          "res_id": pick, "noupdate": true});
        t.ok("ir.model.data", "create", json!([vals.clone()]), json!({}));
        let e = t
            .ek("ir.model.data", "create", json!([vals.clone()]), json!({}))
            .unwrap_err();
        assert_eq!(err(&e).0, "odoo.exceptions.ValidationError", "{v}");
        assert!(
            err(&e)
                .1
                .starts_with("The operation cannot be completed: duplicate key value")
                && err(&e).1.contains("(edge_agent, evt_dup) already exists"),
            "{v}: {e}"
        );
        assert_eq!(
            t.odoo
                .snapshot()
                .xmlids
                .iter()
                .filter(|x| x.0 == "edge_agent.evt_dup")
                .count(),
            1,
            "{v}"
        );
        if v == Version::V19 {
            let a = t.j2(
                &t.odoo.admin_key(),
                "ir.model.data",
                "create",
                json!({"vals_list": [vals]}),
            );
            assert_eq!(a.status, 422);
            assert_eq!(a.json["name"], json!("odoo.exceptions.ValidationError"));
        }
    }
}

// ---- the common service, transports, keys ---------------------------------------------------

#[test]
fn the_common_service_tells_the_version_and_authenticates_passwords_and_keys() {
    for v in Version::ALL {
        let t = T::new(v);
        let a =
            t.c.jsonrpc(json!({"service": "common", "method": "version", "args": []}));
        assert_eq!(
            a.json["result"]["server_version_info"][0],
            json!(v.major()),
            "{v}"
        );
        assert!(
            a.json["result"]["server_version"]
                .as_str()
                .unwrap()
                .starts_with(&v.to_string()),
            "{v}"
        );
        let auth = |login: &str, secret: &str, db: &str| {
            t.c.jsonrpc(json!({"service": "common", "method": "authenticate",
                               "args": [db, login, secret, {}]}))
        };
        let db = t.odoo.database();
        assert_eq!(auth("admin", "admin", db).json["result"], json!(2), "{v}");
        assert_eq!(
            auth("admin", &t.odoo.admin_key(), db).json["result"],
            json!(2),
            "{v}"
        );
        assert_eq!(
            auth(t.odoo.bot_login(), &t.odoo.bot_key(), db).json["result"],
            json!(t.odoo.bot_uid()),
            "{v}"
        );
        assert_eq!(
            auth(t.odoo.bot_login(), "wrong", db).json["result"],
            json!(false),
            "{v}"
        );
        let other = auth("admin", "admin", "no_such_db");
        assert_eq!(
            other.json["error"]["data"]["name"],
            json!("psycopg2.OperationalError"),
            "{v}"
        );

        // JSON-2 is there on 19 only (the agent probes it with the key).
        let probe = t.j2(&t.odoo.bot_key(), "res.users", "context_get", json!({}));
        if v == Version::V19 {
            assert_eq!(probe.status, 200);
            assert_eq!(
                probe.json,
                json!({"lang": "en_US", "tz": false, "uid": t.odoo.bot_uid()})
            );
        } else {
            assert_eq!(probe.status, 404, "{v}");
            assert!(probe.content_type.starts_with("text/html"), "{v}");
        }
        let calls = t.odoo.calls();
        let last = calls.last().unwrap();
        assert_eq!(
            last.transport,
            if v == Version::V19 { "json2" } else { "other" },
            "{v}"
        );
        assert!(calls.iter().any(|c| c.transport == "jsonrpc"
            && c.model == "common"
            && c.method == "authenticate"
            && c.status == 200));
    }
}

#[test]
fn a_rotated_key_is_refused_from_then_on() {
    for v in Version::ALL {
        let t = T::new(v);
        let old = t.odoo.bot_key();
        assert_eq!(old.len(), 40);
        assert!(old.chars().all(|c| c.is_ascii_hexdigit()));
        let uid = t.odoo.bot_uid();
        let search =
            |key: &str| t.ek_as(uid, key, "stock.picking", "search", json!([[]]), json!({}));
        assert_eq!(search(&old).unwrap(), json!([]), "{v}");
        let new = t.odoo.rotate_bot_key();
        assert_ne!(new, old);
        assert_eq!(t.odoo.bot_key(), new);
        let e = search(&old).unwrap_err();
        assert_eq!(
            err(&e),
            (
                "odoo.exceptions.AccessDenied".to_owned(),
                "Access Denied".to_owned()
            ),
            "{v}"
        );
        let auth =
            t.c.jsonrpc(json!({"service": "common", "method": "authenticate",
            "args": [t.odoo.database(), t.odoo.bot_login(), old, {}]}));
        assert_eq!(auth.json["result"], json!(false), "{v}");
        assert_eq!(search(&new).unwrap(), json!([]), "{v}");
        if v == Version::V19 {
            let a = t.j2(&old, "stock.picking", "search", json!({"domain": []}));
            assert_eq!(a.status, 401);
            assert_eq!(a.json["message"], json!("Invalid apikey"));
            assert!(a.headers.get("www-authenticate").is_some());
            let a = t.j2(&new, "stock.picking", "search", json!({"domain": []}));
            assert_eq!(a.status, 200, "{}", a.text);
        }
    }
}

#[test]
fn json2_on_19_takes_named_arguments_and_answers_lists() {
    let t = T::new(Version::V19);
    let key = t.odoo.bot_key();
    let (vendors, stock) = (t.loc("Partners/Vendors"), t.loc("WH/Stock"));
    let a = t.j2(
        &key,
        "stock.picking",
        "create",
        json!({"vals_list": [{"picking_type_id": t.picking_type("incoming"),
                              "location_id": vendors, "location_dest_id": stock,
                              "origin": "evt-j2",
                              "move_ids": [[0, 0, {"product_id": mask(&t), "product_uom_qty": 2.0,
                                                   "location_id": vendors,
                                                   "location_dest_id": stock}]]}]}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let pick = a.json[0].as_i64().unwrap();
    let a = t.j2(
        &key,
        "stock.picking",
        "action_confirm",
        json!({"ids": [pick]}),
    );
    assert_eq!(a.json, json!(true));
    let lines = t.j2(
        &key,
        "stock.move.line",
        "search_read",
        json!({"domain": [["picking_id", "=", pick]], "fields": ["id", "quantity"]}),
    );
    let line = lines.json[0]["id"].as_i64().unwrap();
    let a = t.j2(
        &key,
        "stock.move.line",
        "write",
        json!({"ids": [line], "vals": {"quantity": 2.0, "picked": true}}),
    );
    assert_eq!(a.json, json!(true), "{}", a.text);
    let a = t.j2(
        &key,
        "stock.picking",
        "button_validate",
        json!({"ids": [pick], "context": {"skip_backorder": true,
                                          "picking_ids_not_to_backorder": [pick]}}),
    );
    assert_eq!(a.json, json!(true), "{}", a.text);
    let a = t.j2(
        &key,
        "stock.picking",
        "read",
        json!({"ids": [pick], "fields": ["state", "origin"]}),
    );
    assert_eq!(a.json[0]["state"], json!("done"));
    assert_eq!(a.json[0]["origin"], json!("evt-j2"));
    let a = t.j2(
        &key,
        "stock.quant",
        "action_apply_inventory",
        json!({"ids": []}),
    );
    assert_eq!((a.status, a.text.as_str()), (200, "null"));
    // A wrong database name in the header: werkzeug's page, not JSON.
    let a = t.c.post_json(
        "/json/2/stock.picking/search",
        &[
            ("Authorization", format!("bearer {key}")),
            ("X-Odoo-Database", "other".into()),
        ],
        &json!({"domain": []}),
    );
    assert_eq!(a.status, 404);
    assert!(a.content_type.starts_with("text/html"));
}

// ---- faults, latency, transactions, TLS -----------------------------------------------------

/// The transports of a version: JSON-RPC everywhere, JSON-2 on 19.
fn transports(v: Version) -> Vec<&'static str> {
    if v == Version::V19 {
        vec!["jsonrpc", "json2"]
    } else {
        vec!["jsonrpc"]
    }
}

/// Create a receipt (of picking type `receipts`) with `origin` over a transport, as admin,
/// through `c`: the answer, or `Err` when none came. Exactly one call.
fn create_over(
    t: &T,
    c: &Client,
    transport: &str,
    receipts: i64,
    origin: &str,
) -> Result<Answer, reqwest::Error> {
    let vals = json!({"picking_type_id": receipts, "origin": origin});
    let (path, headers, body) = if transport == "json2" {
        (
            "/json/2/stock.picking/create",
            vec![
                ("Content-Type", "application/json".to_owned()),
                ("Authorization", format!("bearer {}", t.odoo.admin_key())),
            ],
            json!({"vals_list": [vals]}),
        )
    } else {
        (
            "/jsonrpc",
            vec![("Content-Type", "application/json".to_owned())],
            json!({"jsonrpc": "2.0", "method": "call", "id": 7, "params": {
                "service": "object", "method": "execute_kw",
                "args": [t.odoo.database(), 2, t.odoo.admin_key(), "stock.picking", "create",
                         [vals], {}]}}),
        )
    };
    c.send("POST", path, &headers, Some(body.to_string().into_bytes()))
}

/// The error of an answer: JSON-RPC `error.data` (HTTP 200) or the JSON-2 body.
fn error_of(transport: &str, a: &Answer) -> (u16, String, String) {
    let data = if transport == "json2" {
        a.json.clone()
    } else {
        a.json["error"]["data"].clone()
    };
    let (name, message) = err(&data);
    (a.status, name, message)
}

fn origins(t: &T, origin: &str) -> usize {
    t.odoo.snapshot().pickings_with_origin(origin).len()
}

#[test]
fn commit_then_drop_commits_and_answers_nothing() {
    for v in Version::ALL {
        for tr in transports(v) {
            let t = T::new(v);
            let rt = t.picking_type("incoming");
            t.odoo.inject(Fault::on(
                "stock.picking",
                "create",
                FaultKind::CommitThenDrop,
            ));
            let origin = format!("drop-{tr}");
            let r = create_over(&t, &t.c, tr, rt, &origin);
            assert!(r.is_err(), "{v} {tr}: {r:?}");
            assert_eq!(origins(&t, &origin), 1, "{v} {tr}: committed");
            let call = t
                .odoo
                .calls()
                .into_iter()
                .rfind(|c| c.method == "create")
                .unwrap();
            assert_eq!((call.transport, call.status), (tr, 0), "{v}");
            assert!(call.committed, "{v} {tr}");
            assert_eq!(t.odoo.pending_faults(), 0);
            // One shot: the next call is answered.
            let a = create_over(&t, &t.c, tr, rt, &origin).unwrap();
            assert_eq!(a.status, 200, "{v} {tr}: {}", a.text);
            assert_eq!(origins(&t, &origin), 2, "{v} {tr}");
        }
    }
}

#[test]
fn serialization_lock_and_status_faults_commit_nothing() {
    for v in Version::ALL {
        for tr in transports(v) {
            let t = T::new(v);
            let rt = t.picking_type("incoming");
            let json2 = tr == "json2";
            let lock = if v == Version::V19 {
                ("odoo.exceptions.LockError", if json2 { 409 } else { 200 })
            } else {
                ("psycopg2.errors.LockNotAvailable", 200)
            };
            for (kind, status, name) in [
                (
                    FaultKind::Serialization,
                    if json2 { 500 } else { 200 },
                    "psycopg2.errors.SerializationFailure",
                ),
                (FaultKind::Lock, lock.1, lock.0),
            ] {
                t.odoo
                    .inject(Fault::on("stock.picking", "create", kind.clone()));
                let origin = format!("{kind:?}-{tr}");
                let a = create_over(&t, &t.c, tr, rt, &origin).unwrap();
                let (got_status, got_name, message) = error_of(tr, &a);
                assert_eq!((got_status, got_name.as_str()), (status, name), "{v} {tr}");
                assert!(!message.is_empty(), "{v} {tr}");
                if !json2 {
                    let code = if v == Version::V19 { 0 } else { 200 };
                    assert_eq!(a.json["error"]["code"], json!(code), "{v}");
                    assert_eq!(a.json["id"], json!(7), "{v}");
                }
                assert_eq!(origins(&t, &origin), 0, "{v} {tr} {kind:?}");
                let call = t.odoo.calls().pop().unwrap();
                assert!(!call.committed, "{v} {tr}");
                assert_eq!(call.error.as_deref(), Some(name), "{v} {tr}");
                // Retried: done once.
                create_over(&t, &t.c, tr, rt, &origin).unwrap();
                assert_eq!(origins(&t, &origin), 1, "{v} {tr} {kind:?}");
            }
            for code in [502, 503] {
                t.odoo.inject(Fault::any(FaultKind::Status(code)));
                let origin = format!("status-{code}-{tr}");
                let a = create_over(&t, &t.c, tr, rt, &origin).unwrap();
                assert_eq!(a.status, code, "{v} {tr}");
                assert!(a.content_type.starts_with("text/html"), "{v} {tr}");
                assert!(a.text.contains(&code.to_string()), "{v} {tr}");
                assert_eq!(origins(&t, &origin), 0, "{v} {tr}");
                assert_eq!(t.odoo.calls().pop().unwrap().status, code);
            }
        }
    }
}

#[test]
fn a_delayed_answer_comes_late_after_the_commit() {
    for v in Version::ALL {
        for tr in transports(v) {
            let t = T::new(v);
            let rt = t.picking_type("incoming");
            let delay = Duration::from_millis(300);
            t.odoo.inject(Fault::on(
                "stock.picking",
                "create",
                FaultKind::Delay(delay),
            ));
            let started = Instant::now();
            let a = create_over(&t, &t.c, tr, rt, "late").unwrap();
            assert!(started.elapsed() >= delay, "{v} {tr}");
            assert_eq!(a.status, 200, "{v} {tr}");
            assert_eq!(origins(&t, "late"), 1);
            // A client that gives up first: no answer, yet committed.
            let impatient = Client::with(&t.odoo, None, Duration::from_millis(100));
            t.odoo.inject(Fault::on(
                "stock.picking",
                "create",
                FaultKind::Delay(Duration::from_secs(2)),
            ));
            assert!(create_over(&t, &impatient, tr, rt, "given-up").is_err());
            assert_eq!(origins(&t, "given-up"), 1, "{v} {tr}");
        }
    }
}

#[test]
fn an_unauthorized_fault_refuses_the_credentials_once() {
    for v in Version::ALL {
        for tr in transports(v) {
            let t = T::new(v);
            let rt = t.picking_type("incoming");
            t.odoo.inject(Fault::any(FaultKind::Unauthorized));
            let a = create_over(&t, &t.c, tr, rt, "unauth").unwrap();
            let (status, name, message) = error_of(tr, &a);
            if tr == "json2" {
                assert_eq!(
                    (status, name.as_str(), message.as_str()),
                    (401, "werkzeug.exceptions.Unauthorized", "Invalid apikey")
                );
                assert!(a.headers.get("www-authenticate").is_some());
            } else {
                assert_eq!(
                    (status, name.as_str(), message.as_str()),
                    (200, "odoo.exceptions.AccessDenied", "Access Denied"),
                    "{v}"
                );
            }
            assert_eq!(origins(&t, "unauth"), 0, "{v} {tr}");
            // authenticate answers false while the fault holds.
            t.odoo.inject(Fault::any(FaultKind::Unauthorized));
            let auth =
                t.c.jsonrpc(json!({"service": "common", "method": "authenticate",
                "args": [t.odoo.database(), t.odoo.bot_login(), t.odoo.bot_key(), {}]}));
            assert_eq!(auth.json["result"], json!(false), "{v}");
            // One shot.
            assert_eq!(
                create_over(&t, &t.c, tr, rt, "unauth").unwrap().status,
                200,
                "{v}"
            );
            assert_eq!(origins(&t, "unauth"), 1, "{v} {tr}");
        }
    }
}

#[test]
fn faults_are_taken_by_the_first_matching_call_in_order() {
    for v in Version::ALL {
        let t = T::new(v);
        t.odoo.inject(Fault::on(
            "stock.picking",
            "button_validate",
            FaultKind::Status(503),
        ));
        t.odoo.inject(Fault {
            model: Some("stock.lot".into()),
            method: None,
            kind: FaultKind::Serialization,
        });
        t.odoo.inject(Fault::any(FaultKind::Status(502)));
        // `common.version` matches only the third fault (any call): it takes that one.
        let a =
            t.c.jsonrpc(json!({"service": "common", "method": "version", "args": []}));
        assert_eq!(a.status, 502, "{v}");
        assert_eq!(t.odoo.pending_faults(), 2);
        // Searches on pickings do not match the button_validate fault.
        t.ok("stock.picking", "search", json!([[]]), json!({}));
        let e = t
            .ek("stock.lot", "search", json!([[]]), json!({}))
            .unwrap_err();
        assert_eq!(err(&e).0, "psycopg2.errors.SerializationFailure", "{v}");
        assert_eq!(t.odoo.pending_faults(), 1);
        let pick = t.receipt_ready("f", mask(&t), 1.0, None, None);
        let raw = |t: &T| {
            t.c.jsonrpc(json!({"service": "object", "method": "execute_kw",
                "args": [t.odoo.database(), 2, "admin", "stock.picking", "button_validate",
                         [[pick]], T::skip(pick)]}))
        };
        assert_eq!(raw(&t).status, 503, "{v}");
        assert_eq!(t.odoo.pending_faults(), 0);
        assert_eq!(t.state("stock.picking", pick), "assigned", "{v}");
        assert_eq!(raw(&t).json["result"], json!(true), "{v}");
        assert_eq!(t.state("stock.picking", pick), "done", "{v}");
    }
}

#[test]
fn latency_delays_every_answer() {
    for v in Version::ALL {
        let t = T::new(v);
        let latency = Duration::from_millis(150);
        t.odoo.set_latency(latency);
        for _ in 0..2 {
            let started = Instant::now();
            let a =
                t.c.jsonrpc(json!({"service": "common", "method": "version", "args": []}));
            assert_eq!(a.status, 200);
            assert!(started.elapsed() >= latency, "{v}");
        }
        if v == Version::V19 {
            let started = Instant::now();
            let a = t.j2(&t.odoo.bot_key(), "res.users", "context_get", json!({}));
            assert_eq!(a.status, 200);
            assert!(started.elapsed() >= latency);
        }
        t.odoo.set_latency(Duration::ZERO);
        t.ok("stock.picking", "search", json!([[]]), json!({}));
    }
}

#[test]
fn every_call_is_one_transaction() {
    for v in Version::ALL {
        let t = T::new(v);
        let receipts = t.picking_type("incoming");
        // Two records, the second invalid: neither is kept.
        let e = t
            .ek(
                "stock.picking",
                "create",
                json!([[{"picking_type_id": receipts, "origin": "tx-1"},
                        {"picking_type_id": receipts, "origin": "tx-2", "no_such_field": 1}]]),
                json!({}),
            )
            .unwrap_err();
        assert_eq!(err(&e).0, "builtins.ValueError", "{v}");
        assert_eq!(origins(&t, "tx-1") + origins(&t, "tx-2"), 0, "{v}");
        // 17+ confirms a draft picking inside button_validate; the missing lot fails the
        // call, and the confirmation is rolled back with it.
        let pick = t.receipt("tx-3", gauze(&t), 1.0);
        let e = t.validate(pick, T::skip(pick)).unwrap_err();
        assert_eq!(err(&e).0, "odoo.exceptions.UserError", "{v}");
        assert_eq!(t.state("stock.picking", pick), "draft", "{v}");
        assert!(t.lines(pick).is_empty(), "{v}");
        let call = t
            .odoo
            .calls()
            .into_iter()
            .rfind(|c| c.method == "button_validate")
            .unwrap();
        assert!(!call.committed, "{v}");
        assert_eq!(call.error.as_deref(), Some("odoo.exceptions.UserError"));
    }
}

#[test]
fn tls_serves_both_transports_with_the_test_ca() {
    let pki = Pki::new();
    for v in Version::ALL {
        let odoo = FakeOdoo::start_tls(v, &pki);
        assert!(
            odoo.url().starts_with("https://localhost:"),
            "{}",
            odoo.url()
        );
        let c = Client::with(&odoo, Some(&pki.ca_pem), Duration::from_secs(20));
        let a = c.jsonrpc(json!({"service": "common", "method": "version", "args": []}));
        assert_eq!(a.json["result"]["server_version_info"][0], json!(v.major()));
        let a = c.post_json(
            "/json/2/res.users/context_get",
            &[("Authorization", format!("bearer {}", odoo.bot_key()))],
            &json!({}),
        );
        assert_eq!(a.status, if v == Version::V19 { 200 } else { 404 });
        // Another CA: the handshake fails.
        let stranger = Client::with(&odoo, Some(&pki.other_ca_pem), Duration::from_secs(20));
        assert!(
            stranger
                .send("POST", "/jsonrpc", &[], Some(b"{}".to_vec()))
                .is_err()
        );
    }
}

#[test]
fn a_fake_can_be_started_used_and_dropped_inside_async_code() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let odoo = FakeOdoo::start(Version::V19);
        let a = reqwest::Client::new()
            .post(format!("{}/json/2/res.users/context_get", odoo.url()))
            .bearer_auth(odoo.bot_key())
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), 200);
        drop(odoo);
    });
}

#[test]
fn jsonrpc_envelopes_create_results_and_malformed_bodies() {
    for v in Version::ALL {
        let t = T::new(v);
        let rt = t.picking_type("incoming");
        // One dict → an int; a list of dicts → a list.
        let one = t.ok(
            "stock.picking",
            "create",
            json!([{"picking_type_id": rt}]),
            json!({}),
        );
        assert!(one.is_i64(), "{v}: {one}");
        let many = t.ok(
            "stock.picking",
            "create",
            json!([[{"picking_type_id": rt}, {"picking_type_id": rt}]]),
            json!({}),
        );
        assert_eq!(many.as_array().map(Vec::len), Some(2), "{v}: {many}");
        // The id is echoed, null when absent.
        let a = t.c.post_json(
            "/jsonrpc",
            &[],
            &json!({"jsonrpc": "2.0", "method": "call",
                    "params": {"service": "common", "method": "version", "args": []}}),
        );
        assert_eq!(a.json["id"], Value::Null, "{v}");
        assert!(a.text.contains("\"id\": null"), "{v}: {}", a.text);
        let a = t.c.post_json(
            "/jsonrpc",
            &[],
            &json!({"jsonrpc": "2.0", "method": "call", "id": "abc",
                    "params": {"service": "common", "method": "version", "args": []}}),
        );
        assert_eq!(a.json["id"], json!("abc"), "{v}");
        let raw = |body: &[u8]| {
            t.c.send(
                "POST",
                "/jsonrpc",
                &[("Content-Type", "application/json".into())],
                Some(body.to_vec()),
            )
            .unwrap()
        };
        let a = raw(b"{not json");
        assert_eq!(
            (a.status, a.text.as_str()),
            (400, "Invalid JSON data"),
            "{v}"
        );
        assert!(a.content_type.starts_with("text/html"), "{v}");
        let a = raw(b"[1, 2]");
        assert_eq!(
            (a.status, a.text.as_str()),
            (400, "Invalid JSON-RPC data"),
            "{v}"
        );
        if v == Version::V19 {
            let a =
                t.c.send(
                    "POST",
                    "/json/2/res.partner/search",
                    &[
                        ("Content-Type", "application/json".into()),
                        ("Authorization", format!("bearer {}", t.odoo.bot_key())),
                    ],
                    Some(b"{not json".to_vec()),
                )
                .unwrap();
            assert_eq!(a.status, 400);
            assert_eq!(a.json["name"], json!("werkzeug.exceptions.BadRequest"));
            // No Authorization at all.
            let a =
                t.c.post_json("/json/2/res.partner/search", &[], &json!({"domain": []}));
            assert_eq!(a.status, 401);
            assert!(a.headers.get("www-authenticate").is_some());
        }
    }
}

#[test]
fn serial_numbers_are_received_one_per_line() {
    for v in Version::ALL {
        let t = T::new(v);
        let catheter = t.product("012345678905");
        let pick = t.receipt("serials", catheter, 2.0);
        t.confirm(pick);
        let lines = t.lines(pick);
        assert_eq!(lines.len(), 2, "{v}");
        for (line, sn) in lines.iter().zip(["SN-1", "SN-2"]) {
            t.write_line(
                line["id"].as_i64().unwrap(),
                json!({"lot_name": sn, t.qf(): 1.0}),
            );
        }
        t.pick_all(pick);
        assert_eq!(t.validate(pick, T::skip(pick)).unwrap(), json!(true), "{v}");
        for sn in ["SN-1", "SN-2"] {
            assert_eq!(t.on_hand(catheter, "WH/Stock", Some(sn)), 1.0, "{v} {sn}");
        }
        // More than one unit on a serial line is refused.
        let pick = t.receipt("serials-2", catheter, 2.0);
        t.confirm(pick);
        let lines = t.lines(pick);
        t.write_line(
            lines[0]["id"].as_i64().unwrap(),
            json!({"lot_name": "SN-3", t.qf(): 2.0}),
        );
        t.ok(
            "stock.move.line",
            "unlink",
            json!([[lines[1]["id"]]]),
            json!({}),
        );
        t.pick_all(pick);
        let e = t.validate(pick, T::skip(pick)).unwrap_err();
        assert_eq!(err(&e).0, "odoo.exceptions.UserError", "{v}");
        assert!(err(&e).1.contains("unique serial number"), "{v}: {e}");
    }
}

#[test]
fn the_agents_lookups_find_products_locations_and_types() {
    for v in Version::ALL {
        let t = T::new(v);
        t.as_bot();
        // A GTIN-14 and its shorter forms (odoo-api.md §5.3): the GTIN-13 product.
        let found = t.ok(
            "product.product",
            "search_read",
            json!([[["barcode", "in", ["05901234123457", "5901234123457"]]]]),
            json!({"fields": ["id", "tracking", "uom_id", "use_expiration_date"], "limit": 2}),
        );
        assert_eq!(found.as_array().unwrap().len(), 1, "{v}");
        assert_eq!(found[0]["tracking"], json!("lot"), "{v}");
        assert_eq!(found[0]["use_expiration_date"], json!(true), "{v}");
        assert_eq!(found[0]["uom_id"][1], json!("Units"), "{v}");
        let gloves = t.ok(
            "product.product",
            "search_read",
            json!([[["default_code", "=", "GLV-100"]]]),
            json!({"fields": ["id", "barcode", "tracking"]}),
        );
        assert_eq!(gloves[0]["barcode"], json!(false), "{v}");
        assert_eq!(gloves[0]["tracking"], json!("none"), "{v}");
        for (name, usage) in [
            ("Partners/Vendors", "supplier"),
            ("WH/Stock", "internal"),
            ("WH/Stock/Shelf 1", "internal"),
            ("WH/Stock/Shelf 2", "internal"),
            ("Virtual Locations/Production", "production"),
            ("Virtual Locations/Consumption", "production"),
            ("Virtual Locations/Inventory adjustment", "inventory"),
            ("Virtual Locations/Scrap", "inventory"),
        ] {
            let l = t.ok(
                "stock.location",
                "search_read",
                json!([[["complete_name", "=", name]]]),
                json!({"fields": ["id", "usage"]}),
            );
            assert_eq!(l.as_array().unwrap().len(), 1, "{v} {name}");
            assert_eq!(l[0]["usage"], json!(usage), "{v} {name}");
        }
        let types = t.ok(
            "stock.picking.type",
            "search_read",
            json!([[["code", "in", ["incoming", "internal", "outgoing"]]]]),
            json!({"fields": ["id", "code", "default_location_src_id",
                              "default_location_dest_id", "create_backorder"],
                   "order": "sequence"}),
        );
        let codes: Vec<&str> = types
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        assert!(
            codes.contains(&"incoming") && codes.contains(&"internal"),
            "{v}: {codes:?}"
        );
        // A product and a location added by a test are found the same way.
        let p = t.odoo.add_product(NewProduct {
            name: "Swab".into(),
            barcode: Some("4006381333931".into()),
            default_code: None,
            tracking: Tracking::Lot,
            use_expiration_date: false,
            uom: None,
        });
        let l = t.odoo.add_location("WH/Stock/Ward 3", "internal");
        let found = t.ok(
            "product.product",
            "search",
            json!([[["barcode", "=", "4006381333931"]]]),
            json!({}),
        );
        assert_eq!(found, json!([p]), "{v}");
        let found = t.ok(
            "stock.location",
            "search",
            json!([[["complete_name", "=", "WH/Stock/Ward 3"]]]),
            json!({}),
        );
        assert_eq!(found, json!([l]), "{v}");
        t.received("swab", p, 2.0, Some("SW-1"));
        assert_eq!(t.on_hand(p, "WH/Stock", Some("SW-1")), 2.0, "{v}");
    }
}
