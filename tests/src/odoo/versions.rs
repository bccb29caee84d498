//! What differs between 16, 17, 18 and 19 and is not a field (those are in `schema.rs`):
//! version strings, messages, codes.

use serde_json::{Value, json};

use super::Version;

impl Version {
    /// `server_version` as the captured servers report it (the 18 build has a suffix).
    pub(crate) fn server_version(self) -> &'static str {
        match self {
            Version::V16 => "16.0",
            Version::V17 => "17.0",
            Version::V18 => "18.0+e-20241005",
            Version::V19 => "19.0",
        }
    }

    pub(crate) fn server_serie(self) -> String {
        self.to_string()
    }

    pub(crate) fn version_info(self) -> Value {
        json!([self.major(), 0, 0, "final", 0, ""])
    }

    /// `common.version()`.
    pub(crate) fn common_version(self) -> Value {
        json!({
            "server_version": self.server_version(),
            "server_version_info": self.version_info(),
            "server_serie": self.server_serie(),
            "protocol_version": 1,
        })
    }

    /// `error.code` of a JSON-RPC error: 200 up to 18, 0 on 19.
    pub(crate) fn jsonrpc_error_code(self) -> i64 {
        if self >= Version::V19 { 0 } else { 200 }
    }

    /// JSON-2 exists (19+).
    pub(crate) fn has_json2(self) -> bool {
        self >= Version::V19
    }

    /// The move line's done quantity field: `qty_done` (16) or `quantity` (17+).
    pub(crate) fn line_qty_field(self) -> &'static str {
        if self == Version::V16 {
            "qty_done"
        } else {
            "quantity"
        }
    }

    /// The move's done quantity field: `quantity_done` (16) or `quantity` (17+).
    pub(crate) fn move_qty_field(self) -> &'static str {
        if self == Version::V16 {
            "quantity_done"
        } else {
            "quantity"
        }
    }

    /// `picked` exists on moves and move lines (17+).
    pub(crate) fn has_picked(self) -> bool {
        self >= Version::V17
    }

    /// `stock.move.name` exists and is required (16–18); removed in 19.
    pub(crate) fn move_has_name(self) -> bool {
        self <= Version::V18
    }

    /// Storable flag: `detailed_type='product'` (16, 17) or `is_storable` (18+).
    pub(crate) fn has_is_storable(self) -> bool {
        self >= Version::V18
    }

    /// `stock.location.scrap_location` exists (≤18).
    pub(crate) fn has_scrap_location_flag(self) -> bool {
        self <= Version::V18
    }

    /// Scrap links its move by `move_id` (16) or `move_ids` (17+).
    pub(crate) fn scrap_single_move(self) -> bool {
        self == Version::V16
    }

    /// Done pickings are skipped by `button_validate` (19) instead of failing the sanity
    /// check (16–18).
    pub(crate) fn validate_skips_done(self) -> bool {
        self >= Version::V19
    }

    /// `action_confirm` reserves internal and outgoing moves at once (17+; 16 needs
    /// `action_assign`).
    pub(crate) fn reserves_on_confirm(self) -> bool {
        self >= Version::V17
    }

    pub(crate) fn msg_empty_transfer(self) -> &'static str {
        if self == Version::V16 {
            "Please add some items to move."
        } else {
            "You can’t validate an empty transfer. Please add some products to move before proceeding."
        }
    }

    pub(crate) fn msg_no_quantities(self) -> &'static str {
        if self == Version::V16 {
            "You cannot validate a transfer if no quantities are reserved nor done. To force the transfer, switch in edit mode and encode the done quantities."
        } else {
            "You cannot validate a transfer if no quantities are reserved. To force the transfer, encode quantities."
        }
    }

    /// `AccessError` for a method starting with `_`.
    pub(crate) fn msg_private_method(self, model: &str, method: &str) -> String {
        if self >= Version::V19 {
            format!("Private methods (such as '{model}.{method}') cannot be called remotely.")
        } else {
            format!("Private methods (such as {method}) cannot be called remotely.")
        }
    }

    /// `_check_unique_lot` (stock.lot).
    pub(crate) fn msg_duplicate_lot(self, product: &str, lot: &str) -> String {
        if self <= Version::V17 {
            format!(
                "The combination of serial number and product must be unique across a company.\nFollowing combination contains duplicates:\n - Product: {product}, Serial Number: {lot}"
            )
        } else {
            format!(
                "The combination of lot/serial number and product must be unique within a company including when no company is defined.\nThe following combinations contain duplicates:\n - Product: {product}, Lot/Serial Number: {lot}"
            )
        }
    }

    /// `picking_type_id` may still change: 16/17 only on draft pickings, 18+ on any picking
    /// not done or cancelled.
    pub(crate) fn picking_type_locked(self, state: &str) -> bool {
        if self <= Version::V17 {
            state != "draft"
        } else {
            matches!(state, "done" | "cancel")
        }
    }

    /// View ids in wizard actions, as the captured databases had them.
    pub(crate) fn view_id(self, wizard: &str) -> i64 {
        let (v16, v17, v18, v19) = match wizard {
            "stock.backorder.confirmation" => (554, 597, 623, 659),
            "stock.immediate.transfer" => (552, 552, 552, 552),
            "expiry.picking.confirmation" => (712, 741, 770, 803),
            "stock.warn.insufficient.qty.scrap" => (560, 603, 631, 667),
            _ => (1, 1, 1, 1),
        };
        match self {
            Version::V16 => v16,
            Version::V17 => v17,
            Version::V18 => v18,
            Version::V19 => v19,
        }
    }
}
