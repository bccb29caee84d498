//! A protocol-faithful fake Odoo (16, 17, 18 or 19) for the Odoo sink's tests: axum over
//! axum-server (plain HTTP or rustls), in its own runtime, one in-memory database `odoo_test`.
//!
//! Built from `odoo-api.md` and the real request/response captures of each version:
//! - Transports ([`server`]): `POST /jsonrpc` (services `common` and `object`), JSON-2
//!   `POST /json/2/<model>/<method>` on 19 only (404 on 16–18, as a real server answers),
//!   `GET /web/version` and `/json/version` on 19, `POST /web/webclient/version_info` on all.
//!   Error bodies, status codes, field order and messages are those of the captures.
//! - Calls ([`rpc`]): one call is one transaction: the database is cloned, the method runs on
//!   the clone, and the clone replaces the database only if the call succeeded.
//! - Records ([`db`], [`schema`]): a generic store with per-version fields, a domain evaluator,
//!   `read`/`write` conversions (many2one as `[id, name]`, x2many commands).
//! - Stock ([`stock`], [`load`]): pickings, moves, move lines, lots, quants, scraps, the
//!   `button_validate` wizards of each version, `load` with external ids.
//! - Faults ([`faults`]): one-shot faults matched in order, latency, and connections cut below
//!   hyper so that an answer can be lost after the commit.
//!
//! Users: `admin` (uid 2, password `admin`, [`FakeOdoo::admin_key`]: everything) and the bot
//! `edgebot` (uid 6, API key only, [`FakeOdoo::bot_key`]: Inventory / User rights, so
//! `ir.model.data` is refused except through `check_object_reference` and `load`).

mod barcode;
mod db;
mod domain;
mod error;
mod faults;
mod load;
mod rpc;
mod schema;
mod seed;
mod server;
mod stock;
mod versions;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::hub::Pki;

pub use faults::{Fault, FaultKind};

/// The Odoo major version the fake answers as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    V16,
    V17,
    V18,
    V19,
}

impl Version {
    pub const ALL: [Version; 4] = [Version::V16, Version::V17, Version::V18, Version::V19];

    /// The major number: 16 … 19.
    pub fn major(self) -> u32 {
        match self {
            Version::V16 => 16,
            Version::V17 => 17,
            Version::V18 => 18,
            Version::V19 => 19,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.0", self.major())
    }
}

/// How a product is tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    None,
    Lot,
    Serial,
}

impl Tracking {
    fn as_str(self) -> &'static str {
        match self {
            Tracking::None => "none",
            Tracking::Lot => "lot",
            Tracking::Serial => "serial",
        }
    }
}

/// A storable product to add to the database.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub name: String,
    pub barcode: Option<String>,
    pub default_code: Option<String>,
    pub tracking: Tracking,
    pub use_expiration_date: bool,
    /// `None`: Units.
    pub uom: Option<i64>,
}

/// One call as the fake saw it, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `"jsonrpc"`, `"json2"` or `"other"` (version routes, unknown paths, bad bodies).
    pub transport: &'static str,
    /// The model (`"common"` for the common service, the path for `"other"`).
    pub model: String,
    pub method: String,
    /// The HTTP status answered; 0 when the connection was cut without an answer.
    pub status: u16,
    /// The exception's name (e.g. `odoo.exceptions.UserError`) when the call failed, or a
    /// short description of an injected fault (`"HTTP 503"`, `"dropped after commit"`).
    pub error: Option<String>,
    /// The exception's message when the call failed.
    pub message: Option<String>,
    /// Whether the call's changes were committed.
    pub committed: bool,
}

/// A consistent copy of the stock state (see [`FakeOdoo::snapshot`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stock {
    pub pickings: Vec<Picking>,
    pub moves: Vec<Move>,
    pub move_lines: Vec<MoveLine>,
    pub lots: Vec<Lot>,
    pub quants: Vec<Quant>,
    pub scraps: Vec<Scrap>,
    /// `(module.name, model, res_id)`.
    pub xmlids: Vec<(String, String, i64)>,
    pub products: Vec<Product>,
    pub locations: Vec<Location>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Picking {
    pub id: i64,
    pub name: String,
    pub origin: Option<String>,
    pub state: String,
    pub picking_type_code: String,
    pub location_id: i64,
    pub location_dest_id: i64,
    pub picking_type_id: i64,
    pub backorder_id: Option<i64>,
    pub date_done: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub id: i64,
    pub picking_id: Option<i64>,
    pub product_id: i64,
    pub product_uom_qty: f64,
    /// The done (16: `quantity_done`) or reserved-or-done (17+: `quantity`) quantity.
    pub quantity: f64,
    pub state: String,
    pub location_id: i64,
    pub location_dest_id: i64,
    /// 17+; always false on 16.
    pub picked: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MoveLine {
    pub id: i64,
    pub move_id: i64,
    pub product_id: i64,
    pub lot_id: Option<i64>,
    pub lot_name: Option<String>,
    /// `qty_done` on 16, `quantity` on 17+.
    pub quantity: f64,
    pub location_id: i64,
    pub location_dest_id: i64,
    pub expiration_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lot {
    pub id: i64,
    pub name: String,
    pub product_id: i64,
    /// `"YYYY-MM-DD HH:MM:SS"`.
    pub expiration_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Quant {
    pub id: i64,
    pub product_id: i64,
    pub location_id: i64,
    pub lot_id: Option<i64>,
    pub quantity: f64,
    pub reserved_quantity: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scrap {
    pub id: i64,
    pub name: String,
    pub origin: Option<String>,
    pub state: String,
    pub product_id: i64,
    pub lot_id: Option<i64>,
    pub scrap_qty: f64,
    pub location_id: i64,
    pub scrap_location_id: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub barcode: Option<String>,
    pub default_code: Option<String>,
    pub tracking: String,
    pub use_expiration_date: bool,
    pub uom_id: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub id: i64,
    pub complete_name: String,
    pub usage: String,
    pub barcode: Option<String>,
}

impl Stock {
    /// The id of the location with this full name ("WH/Stock").
    pub fn location_id(&self, complete_name: &str) -> Option<i64> {
        self.locations
            .iter()
            .find(|l| l.complete_name == complete_name)
            .map(|l| l.id)
    }

    /// The id of the product with this barcode.
    pub fn product_id(&self, barcode: &str) -> Option<i64> {
        self.products
            .iter()
            .find(|p| p.barcode.as_deref() == Some(barcode))
            .map(|p| p.id)
    }

    /// The on-hand quantity of a product at a location (that location only, not its
    /// children), of one lot by name or, with `None`, of all lots and none.
    pub fn quantity(&self, product_id: i64, location_id: i64, lot: Option<&str>) -> f64 {
        let lot_id = match lot {
            Some(name) => match self.lot(product_id, name) {
                Some(l) => Some(l.id),
                None => return 0.0,
            },
            None => None,
        };
        self.quants
            .iter()
            .filter(|q| q.product_id == product_id && q.location_id == location_id)
            .filter(|q| lot_id.is_none() || q.lot_id == lot_id)
            .map(|q| q.quantity)
            .sum()
    }

    /// The lot of a product by name.
    pub fn lot(&self, product_id: i64, name: &str) -> Option<&Lot> {
        self.lots
            .iter()
            .find(|l| l.product_id == product_id && l.name == name)
    }

    /// The pickings whose Source Document is `origin`.
    pub fn pickings_with_origin(&self, origin: &str) -> Vec<&Picking> {
        self.pickings
            .iter()
            .filter(|p| p.origin.as_deref() == Some(origin))
            .collect()
    }

    /// The scraps whose Source Document is `origin`.
    pub fn scraps_with_origin(&self, origin: &str) -> Vec<&Scrap> {
        self.scraps
            .iter()
            .filter(|s| s.origin.as_deref() == Some(origin))
            .collect()
    }

    /// The moves of a picking.
    pub fn moves_of(&self, picking_id: i64) -> Vec<&Move> {
        self.moves
            .iter()
            .filter(|m| m.picking_id == Some(picking_id))
            .collect()
    }

    /// The move lines of a move.
    pub fn lines_of(&self, move_id: i64) -> Vec<&MoveLine> {
        self.move_lines
            .iter()
            .filter(|l| l.move_id == move_id)
            .collect()
    }

    /// The record an external id (`module.name`) points to.
    pub fn xmlid(&self, full_name: &str) -> Option<(&str, i64)> {
        self.xmlids
            .iter()
            .find(|(n, _, _)| n == full_name)
            .map(|(_, m, id)| (m.as_str(), *id))
    }
}

/// A running fake Odoo, served from its own runtime (so it can be used from plain and from
/// async tests alike). Stopped on drop.
#[derive(Debug)]
pub struct FakeOdoo {
    shared: Arc<server::Shared>,
    url: String,
    handle: axum_server::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

/// The database name of every fake.
pub const DATABASE: &str = "odoo_test";
/// The bot's login.
pub const BOT_LOGIN: &str = "edgebot";
/// The admin's login and password.
pub const ADMIN_LOGIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin";
/// User ids.
pub const ADMIN_UID: i64 = 2;
pub const BOT_UID: i64 = 6;

impl FakeOdoo {
    /// Plain HTTP on 127.0.0.1 on a free port, database `odoo_test`, seeded.
    pub fn start(version: Version) -> FakeOdoo {
        server::start(version, None)
    }

    /// The same over TLS with the hub certificate of `pki` (for `localhost` and 127.0.0.1).
    pub fn start_tls(version: Version, pki: &Pki) -> FakeOdoo {
        server::start(version, Some(pki))
    }

    pub fn version(&self) -> Version {
        self.shared.version
    }

    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn database(&self) -> &str {
        DATABASE
    }

    pub fn bot_login(&self) -> &str {
        BOT_LOGIN
    }

    pub fn bot_uid(&self) -> i64 {
        BOT_UID
    }

    /// The bot's current API key (40 hex digits).
    pub fn bot_key(&self) -> String {
        self.shared.lock_keys().bot.clone()
    }

    /// A new key for the bot; the old one is refused from now on.
    pub fn rotate_bot_key(&self) -> String {
        let key = faults::new_key();
        self.shared.lock_keys().bot = key.clone();
        key
    }

    /// The admin's API key (login `admin`; the password `admin` works on JSON-RPC too).
    pub fn admin_key(&self) -> String {
        self.shared.lock_keys().admin.clone()
    }

    /// Add a storable product; its id.
    pub fn add_product(&self, p: NewProduct) -> i64 {
        self.shared
            .with_db(|db| seed::add_product(db, self.shared.version, &p))
    }

    /// Add a location under "its parent by name" (the part before the last `/`, created as a
    /// view location if missing); its id.
    pub fn add_location(&self, complete_name: &str, usage: &str) -> i64 {
        self.shared
            .with_db(|db| seed::add_location(db, self.shared.version, complete_name, usage))
    }

    /// Put on hand: a quant of `qty` of a product at a location, of a lot by name (created if
    /// missing, with this expiry `"YYYY-MM-DD HH:MM:SS"`).
    pub fn add_stock(
        &self,
        product_id: i64,
        location_id: i64,
        lot: Option<(&str, Option<&str>)>,
        qty: f64,
    ) {
        self.shared.with_db(|db| {
            seed::add_stock(db, self.shared.version, product_id, location_id, lot, qty)
        })
    }

    /// Every answer after `d` (on top of any injected delay).
    pub fn set_latency(&self, d: Duration) {
        *lock(&self.shared.latency) = d;
    }

    /// A one-shot fault for the next call it matches (faults are matched in order).
    pub fn inject(&self, f: Fault) {
        lock(&self.shared.faults).push(f);
    }

    /// Injected faults not used yet.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).len()
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.calls).clone()
    }

    /// A consistent copy of the stock state.
    pub fn snapshot(&self) -> Stock {
        self.shared
            .with_db(|db| stock::snapshot(db, self.shared.version))
    }

    /// Run `f` on the database (committed state) — for tests that need a record the
    /// snapshot does not show: the record as JSON-RPC `read` gives it with all fields.
    pub fn read(&self, model: &str, id: i64) -> Option<serde_json::Value> {
        self.shared
            .with_db(|db| db::read_one(db, self.shared.version, model, id))
    }
}

impl Drop for FakeOdoo {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(rt) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Dropped inside async code (a tokio test): waiting would panic there.
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(1));
            }
        }
    }
}

/// Lock a mutex even if a panicking test thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
