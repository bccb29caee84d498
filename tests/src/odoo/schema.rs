//! The models and fields of each version (only what the agent and its tests touch), as
//! odoo-api.md §2.1 lists them.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::Version;

/// A field's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Char,
    Text,
    Int,
    Float,
    Bool,
    Selection(&'static [(&'static str, &'static str)]),
    Date,
    Datetime,
    Many2one(&'static str),
    /// Comodel and its inverse many2one.
    One2many(&'static str, &'static str),
    Many2many(&'static str),
}

impl Ty {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::Char => "char",
            Ty::Text => "text",
            Ty::Int => "integer",
            Ty::Float => "float",
            Ty::Bool => "boolean",
            Ty::Selection(_) => "selection",
            Ty::Date => "date",
            Ty::Datetime => "datetime",
            Ty::Many2one(_) => "many2one",
            Ty::One2many(..) => "one2many",
            Ty::Many2many(_) => "many2many",
        }
    }

    pub(crate) fn relation(self) -> Option<&'static str> {
        match self {
            Ty::Many2one(m) | Ty::One2many(m, _) | Ty::Many2many(m) => Some(m),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub string: &'static str,
    pub required: bool,
    /// Computed by the fake; writes are ignored (as Odoo does for readonly computed fields
    /// without an inverse), unless the model's code handles them.
    pub computed: bool,
}

/// What the Inventory / User bot may do with a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rights {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    pub unlink: bool,
    /// The group named in the AccessError message.
    pub group: &'static str,
}

const ALL: Rights = Rights {
    read: true,
    write: true,
    create: true,
    unlink: true,
    group: "",
};
const READ: Rights = Rights {
    read: true,
    write: false,
    create: false,
    unlink: false,
    group: "Inventory/Administrator",
};
const NONE_ADMIN: Rights = Rights {
    read: false,
    write: false,
    create: false,
    unlink: false,
    group: "Access Rights",
};
const NONE_SETTINGS: Rights = Rights {
    read: false,
    write: false,
    create: false,
    unlink: false,
    group: "Settings",
};

#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub name: &'static str,
    pub description: &'static str,
    pub fields: Vec<Field>,
    /// Default `order`.
    pub order: &'static str,
    pub bot: Rights,
}

impl Model {
    pub(crate) fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.field(name).is_some()
    }
}

#[derive(Debug)]
pub(crate) struct Schema {
    pub models: BTreeMap<&'static str, Model>,
}

impl Schema {
    pub(crate) fn model(&self, name: &str) -> Option<&Model> {
        self.models.get(name)
    }
}

/// The schema of a version.
pub(crate) fn schema(v: Version) -> &'static Schema {
    static S: [OnceLock<Schema>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let i = match v {
        Version::V16 => 0,
        Version::V17 => 1,
        Version::V18 => 2,
        Version::V19 => 3,
    };
    S[i].get_or_init(|| build(v))
}

const PICKING_STATES: &[(&str, &str)] = &[
    ("draft", "Draft"),
    ("waiting", "Waiting Another Operation"),
    ("confirmed", "Waiting"),
    ("assigned", "Ready"),
    ("done", "Done"),
    ("cancel", "Cancelled"),
];
const MOVE_STATES: &[(&str, &str)] = &[
    ("draft", "New"),
    ("waiting", "Waiting Another Move"),
    ("confirmed", "Waiting Availability"),
    ("partially_available", "Partially Available"),
    ("assigned", "Available"),
    ("done", "Done"),
    ("cancel", "Cancelled"),
];
const CODES: &[(&str, &str)] = &[
    ("incoming", "Receipt"),
    ("outgoing", "Delivery"),
    ("internal", "Internal Transfer"),
];
const USAGES: &[(&str, &str)] = &[
    ("supplier", "Vendor Location"),
    ("view", "View"),
    ("internal", "Internal Location"),
    ("customer", "Customer Location"),
    ("inventory", "Inventory Loss"),
    ("production", "Production"),
    ("transit", "Transit Location"),
];
const TRACKING: &[(&str, &str)] = &[
    ("serial", "By Unique Serial Number"),
    ("lot", "By Lots"),
    ("none", "No Tracking"),
];
const TRACKING_18: &[(&str, &str)] = &[
    ("serial", "By Unique Serial Number"),
    ("lot", "By Lots"),
    ("none", "By Quantity"),
];
const DETAILED_TYPE: &[(&str, &str)] = &[
    ("consu", "Consumable"),
    ("service", "Service"),
    ("product", "Storable Product"),
];
const TYPE_18: &[(&str, &str)] = &[
    ("consu", "Goods"),
    ("service", "Service"),
    ("combo", "Combo"),
];
const BACKORDER: &[(&str, &str)] = &[("ask", "Ask"), ("always", "Always"), ("never", "Never")];
const RESERVATION: &[(&str, &str)] = &[
    ("at_confirm", "At Confirmation"),
    ("manual", "Manually"),
    ("by_date", "Before scheduled date"),
];
const SCRAP_STATES: &[(&str, &str)] = &[("draft", "Draft"), ("done", "Done")];
const MOVE_TYPES: &[(&str, &str)] = &[
    ("direct", "As soon as possible"),
    ("one", "When all products are ready"),
];
const PRIORITIES: &[(&str, &str)] = &[("0", "Normal"), ("1", "Urgent")];

struct B {
    fields: Vec<Field>,
}

impl B {
    fn new() -> B {
        let mut b = B { fields: Vec::new() };
        b.c("id", Ty::Int, "ID");
        b.c("display_name", Ty::Char, "Display Name");
        b.c("create_date", Ty::Datetime, "Created on");
        b.c("write_date", Ty::Datetime, "Last Updated on");
        b
    }
    fn f(&mut self, name: &'static str, ty: Ty, string: &'static str) -> &mut B {
        self.fields.push(Field {
            name,
            ty,
            string,
            required: false,
            computed: false,
        });
        self
    }
    fn r(&mut self, name: &'static str, ty: Ty, string: &'static str) -> &mut B {
        self.fields.push(Field {
            name,
            ty,
            string,
            required: true,
            computed: false,
        });
        self
    }
    fn c(&mut self, name: &'static str, ty: Ty, string: &'static str) -> &mut B {
        self.fields.push(Field {
            name,
            ty,
            string,
            required: false,
            computed: true,
        });
        self
    }
    fn when(&mut self, cond: bool, f: impl FnOnce(&mut B)) -> &mut B {
        if cond {
            f(self);
        }
        self
    }
}

fn build(v: Version) -> Schema {
    let mut models = BTreeMap::new();
    let mut add = |name: &'static str,
                   description: &'static str,
                   order: &'static str,
                   bot: Rights,
                   b: &mut B| {
        models.insert(
            name,
            Model {
                name,
                description,
                fields: std::mem::take(&mut b.fields),
                order,
                bot,
            },
        );
    };
    use Ty::*;

    add(
        "res.company",
        "Companies",
        "sequence, name",
        READ,
        B::new().r("name", Char, "Company Name"),
    );
    add(
        "res.partner",
        "Contact",
        "name, id desc",
        ALL,
        B::new()
            .r("name", Char, "Name")
            .f("comment", Text, "Notes")
            .f("email", Char, "Email")
            .f("phone", Char, "Phone")
            .f("ref", Char, "Reference")
            .f("is_company", Bool, "Is a Company")
            .f("active", Bool, "Active")
            .f("company_id", Many2one("res.company"), "Company"),
    );
    add(
        "res.users",
        "User",
        "name, login",
        READ,
        B::new()
            .r("login", Char, "Login")
            .f("name", Char, "Name")
            .f("partner_id", Many2one("res.partner"), "Related Partner")
            .f("company_id", Many2one("res.company"), "Company")
            .f("active", Bool, "Active"),
    );
    add(
        "uom.uom",
        "Product Unit of Measure",
        "name",
        READ,
        B::new()
            .r("name", Char, "Unit of Measure")
            .f("factor", Float, "Ratio")
            .f("rounding", Float, "Rounding Precision")
            .f("active", Bool, "Active"),
    );
    add(
        "product.product",
        "Product Variant",
        "default_code, name, id",
        READ,
        B::new()
            .r("name", Char, "Name")
            .f("barcode", Char, "Barcode")
            .f("default_code", Char, "Internal Reference")
            .f(
                "tracking",
                Selection(if v >= Version::V18 {
                    TRACKING_18
                } else {
                    TRACKING
                }),
                "Tracking",
            )
            .f("uom_id", Many2one("uom.uom"), "Unit of Measure")
            .when(v <= Version::V18, |b| {
                b.f("uom_po_id", Many2one("uom.uom"), "Purchase Unit");
            })
            .f("use_expiration_date", Bool, "Use Expiration Date")
            .f("expiration_time", Int, "Expiration Time")
            .f("active", Bool, "Active")
            .f("list_price", Float, "Sales Price")
            .f("standard_price", Float, "Cost")
            .when(v <= Version::V17, |b| {
                b.f("detailed_type", Selection(DETAILED_TYPE), "Product Type")
                    .c(
                        "type",
                        Selection(&[
                            ("consu", "Consumable"),
                            ("service", "Service"),
                            ("product", "Storable Product"),
                        ]),
                        "Type",
                    );
            })
            .when(v >= Version::V18, |b| {
                b.f("type", Selection(TYPE_18), "Product Type").f(
                    "is_storable",
                    Bool,
                    "Track Inventory",
                );
            })
            .c("qty_available", Float, "Quantity On Hand"),
    );
    add(
        "stock.location",
        "Inventory Locations",
        "complete_name, id",
        READ,
        B::new()
            .r("name", Char, "Location Name")
            .c("complete_name", Char, "Full Location Name")
            .f("location_id", Many2one("stock.location"), "Parent Location")
            .c(
                "child_ids",
                One2many("stock.location", "location_id"),
                "Contains",
            )
            .f("usage", Selection(USAGES), "Location Type")
            .f("barcode", Char, "Barcode")
            .f("active", Bool, "Active")
            .f("company_id", Many2one("res.company"), "Company")
            .when(v.has_scrap_location_flag(), |b| {
                b.f("scrap_location", Bool, "Is a Scrap Location?");
            }),
    );
    add(
        "stock.warehouse",
        "Warehouse",
        "sequence,id",
        READ,
        B::new()
            .r("name", Char, "Warehouse")
            .r("code", Char, "Short Name")
            .f("lot_stock_id", Many2one("stock.location"), "Location Stock")
            .f("company_id", Many2one("res.company"), "Company")
            .f("active", Bool, "Active"),
    );
    add(
        "stock.picking.type",
        "Picking Type",
        "sequence, id",
        READ,
        B::new()
            .r("name", Char, "Operation Type")
            .r("code", Selection(CODES), "Type of Operation")
            .f("sequence", Int, "Sequence")
            .r("sequence_code", Char, "Sequence Prefix")
            .f("warehouse_id", Many2one("stock.warehouse"), "Warehouse")
            .f(
                "default_location_src_id",
                Many2one("stock.location"),
                "Default Source Location",
            )
            .f(
                "default_location_dest_id",
                Many2one("stock.location"),
                "Default Destination Location",
            )
            .f("use_create_lots", Bool, "Create New Lots/Serial Numbers")
            .f(
                "use_existing_lots",
                Bool,
                "Use Existing Lots/Serial Numbers",
            )
            .f("create_backorder", Selection(BACKORDER), "Create Backorder")
            .f(
                "reservation_method",
                Selection(RESERVATION),
                "Reservation Method",
            )
            .f("active", Bool, "Active")
            .f("company_id", Many2one("res.company"), "Company"),
    );
    add(
        "stock.picking",
        "Transfer",
        "priority desc, scheduled_date asc, id desc",
        ALL,
        B::new()
            .f("name", Char, "Reference")
            .f("origin", Char, "Source Document")
            .f("note", Text, "Notes")
            .c("state", Selection(PICKING_STATES), "Status")
            .r(
                "picking_type_id",
                Many2one("stock.picking.type"),
                "Operation Type",
            )
            .c("picking_type_code", Selection(CODES), "Type of Operation")
            .f("location_id", Many2one("stock.location"), "Source Location")
            .f(
                "location_dest_id",
                Many2one("stock.location"),
                "Destination Location",
            )
            .f("partner_id", Many2one("res.partner"), "Contact")
            .f("user_id", Many2one("res.users"), "Responsible")
            .f("scheduled_date", Datetime, "Scheduled Date")
            .c("date_done", Datetime, "Date of Transfer")
            .f("backorder_id", Many2one("stock.picking"), "Back Order of")
            .c(
                "backorder_ids",
                One2many("stock.picking", "backorder_id"),
                "Back Orders",
            )
            .f(
                "move_ids",
                One2many("stock.move", "picking_id"),
                "Stock Moves",
            )
            .when(v <= Version::V18, |b| {
                b.f(
                    "move_ids_without_package",
                    One2many("stock.move", "picking_id"),
                    "Stock moves not in package",
                );
            })
            .f(
                "move_line_ids",
                One2many("stock.move.line", "picking_id"),
                "Operations",
            )
            .when(v == Version::V16, |b| {
                b.f(
                    "move_line_nosuggest_ids",
                    One2many("stock.move.line", "picking_id"),
                    "Operations",
                )
                .f("immediate_transfer", Bool, "Immediate Transfer");
            })
            .f("move_type", Selection(MOVE_TYPES), "Shipping Policy")
            .f("priority", Selection(PRIORITIES), "Priority")
            .f("company_id", Many2one("res.company"), "Company"),
    );
    add(
        "stock.move",
        "Stock Move",
        "sequence, id",
        ALL,
        B::new()
            .when(v.move_has_name(), |b| {
                b.r("name", Char, "Description");
            })
            .f("description_picking", Text, "Description of Picking")
            .f("sequence", Int, "Sequence")
            .r("product_id", Many2one("product.product"), "Product")
            .f("product_uom_qty", Float, "Demand")
            .c("product_qty", Float, "Real Quantity")
            .f("product_uom", Many2one("uom.uom"), "UoM")
            .f("location_id", Many2one("stock.location"), "Source Location")
            .f(
                "location_dest_id",
                Many2one("stock.location"),
                "Destination Location",
            )
            .when(v >= Version::V18, |b| {
                b.f(
                    "location_final_id",
                    Many2one("stock.location"),
                    "Final Location",
                );
            })
            .f("picking_id", Many2one("stock.picking"), "Transfer")
            .f(
                "picking_type_id",
                Many2one("stock.picking.type"),
                "Operation Type",
            )
            .f("origin", Char, "Source Document")
            .c("state", Selection(MOVE_STATES), "Status")
            .when(v == Version::V16, |b| {
                b.c("quantity_done", Float, "Quantity Done").c(
                    "reserved_availability",
                    Float,
                    "Quantity Reserved",
                );
            })
            .when(v >= Version::V17, |b| {
                b.f("quantity", Float, "Quantity")
                    .f("picked", Bool, "Picked");
            })
            .f(
                "move_line_ids",
                One2many("stock.move.line", "move_id"),
                "Move Lines",
            )
            .c("lot_ids", Many2many("stock.lot"), "Serial Numbers")
            .when(v <= Version::V18, |b| {
                b.c("scrapped", Bool, "Scrapped");
            })
            .when(v >= Version::V17, |b| {
                b.f("scrap_id", Many2one("stock.scrap"), "Scrap operation");
            })
            .when(v == Version::V16, |b| {
                b.c("scrap_ids", One2many("stock.scrap", "move_id"), "Scrap");
            })
            .f("date", Datetime, "Date Scheduled")
            .f("company_id", Many2one("res.company"), "Company"),
    );
    add(
        "stock.move.line",
        "Product Moves (Stock Move Line)",
        "id",
        ALL,
        B::new()
            .f("move_id", Many2one("stock.move"), "Stock Operation")
            .f("picking_id", Many2one("stock.picking"), "Transfer")
            .f("product_id", Many2one("product.product"), "Product")
            .f("product_uom_id", Many2one("uom.uom"), "Unit of Measure")
            .r("location_id", Many2one("stock.location"), "From")
            .r("location_dest_id", Many2one("stock.location"), "To")
            .f("lot_id", Many2one("stock.lot"), "Lot/Serial Number")
            .f("lot_name", Char, "Lot/Serial Number Name")
            .f(
                "package_id",
                Many2one("stock.quant.package"),
                "Source Package",
            )
            .f(
                "result_package_id",
                Many2one("stock.quant.package"),
                "Destination Package",
            )
            .f("owner_id", Many2one("res.partner"), "From Owner")
            .when(v == Version::V16, |b| {
                b.f("qty_done", Float, "Done")
                    .f("reserved_uom_qty", Float, "Reserved")
                    .c("reserved_qty", Float, "Real Reserved Quantity");
            })
            .when(v >= Version::V17, |b| {
                b.f("quantity", Float, "Quantity")
                    .f("picked", Bool, "Picked");
            })
            .c("state", Selection(MOVE_STATES), "Status")
            .c("reference", Char, "Reference")
            .c("tracking", Selection(TRACKING), "Product with Tracking")
            .f("expiration_date", Datetime, "Expiration Date")
            .f("date", Datetime, "Date")
            .f("company_id", Many2one("res.company"), "Company"),
    );
    add(
        "stock.quant.package",
        "Packages",
        "name",
        ALL,
        B::new().f("name", Char, "Package Reference"),
    );
    add(
        "stock.lot",
        "Lot/Serial",
        "name, id",
        ALL,
        B::new()
            .r("name", Char, "Lot/Serial Number")
            .r("product_id", Many2one("product.product"), "Product")
            .f("company_id", Many2one("res.company"), "Company")
            .f("ref", Char, "Internal Reference")
            .f("note", Text, "Description")
            .f("expiration_date", Datetime, "Expiration Date")
            .f("use_date", Datetime, "Best before Date")
            .f("removal_date", Datetime, "Removal Date")
            .f("alert_date", Datetime, "Alert Date")
            .c("product_expiry_alert", Bool, "Expiration Alert")
            .c("product_qty", Float, "On Hand Quantity")
            .c("quant_ids", One2many("stock.quant", "lot_id"), "Quants"),
    );
    add(
        "stock.quant",
        "Quants",
        "id",
        ALL,
        B::new()
            .r("product_id", Many2one("product.product"), "Product")
            .r("location_id", Many2one("stock.location"), "Location")
            .f("lot_id", Many2one("stock.lot"), "Lot/Serial Number")
            .f("package_id", Many2one("stock.quant.package"), "Package")
            .f("owner_id", Many2one("res.partner"), "Owner")
            .c("quantity", Float, "Quantity")
            .c("reserved_quantity", Float, "Reserved Quantity")
            .c("available_quantity", Float, "Available Quantity")
            .f("inventory_quantity", Float, "Counted Quantity")
            .f("inventory_quantity_set", Bool, "Inventory Quantity Set")
            .f("inventory_date", Date, "Scheduled Date")
            .c("inventory_diff_quantity", Float, "Difference")
            .c("in_date", Datetime, "Incoming Date")
            .f("company_id", Many2one("res.company"), "Company"),
    );
    add(
        "stock.scrap",
        "Scrap",
        "id desc",
        ALL,
        B::new()
            .f("name", Char, "Reference")
            .f("origin", Char, "Source Document")
            .c("state", Selection(SCRAP_STATES), "Status")
            .r("product_id", Many2one("product.product"), "Product")
            .f("product_uom_id", Many2one("uom.uom"), "Unit of Measure")
            .f("lot_id", Many2one("stock.lot"), "Lot/Serial")
            .f("package_id", Many2one("stock.quant.package"), "Package")
            .f("owner_id", Many2one("res.partner"), "Owner")
            .f("location_id", Many2one("stock.location"), "Source Location")
            .f(
                "scrap_location_id",
                Many2one("stock.location"),
                "Scrap Location",
            )
            .r("scrap_qty", Float, "Quantity")
            .f("picking_id", Many2one("stock.picking"), "Picking")
            .when(v.scrap_single_move(), |b| {
                b.c("move_id", Many2one("stock.move"), "Scrap Move");
            })
            .when(!v.scrap_single_move(), |b| {
                b.c(
                    "move_ids",
                    One2many("stock.move", "scrap_id"),
                    "Scrap Moves",
                );
            })
            .c("date_done", Datetime, "Date")
            .f("company_id", Many2one("res.company"), "Company"),
    );
    add(
        "stock.warn.insufficient.qty.scrap",
        "Warn Insufficient Scrap Quantity",
        "id",
        ALL,
        B::new()
            .f("product_id", Many2one("product.product"), "Product")
            .f("location_id", Many2one("stock.location"), "Location")
            .f("scrap_id", Many2one("stock.scrap"), "Scrap")
            .f("quantity", Float, "Quantity")
            .f("product_uom_name", Char, "Unit of Measure"),
    );
    add(
        "stock.backorder.confirmation",
        "Backorder Confirmation",
        "id",
        ALL,
        B::new()
            .f("pick_ids", Many2many("stock.picking"), "Pick")
            .f("show_transfers", Bool, "Show Transfers")
            .f(
                "backorder_confirmation_line_ids",
                One2many(
                    "stock.backorder.confirmation.line",
                    "backorder_confirmation_id",
                ),
                "Backorder Confirmation Lines",
            ),
    );
    add(
        "stock.backorder.confirmation.line",
        "Backorder Confirmation Line",
        "id",
        ALL,
        B::new()
            .f(
                "backorder_confirmation_id",
                Many2one("stock.backorder.confirmation"),
                "Immediate Transfer",
            )
            .f("picking_id", Many2one("stock.picking"), "Transfer")
            .f("to_backorder", Bool, "To Backorder"),
    );
    if v == Version::V16 {
        add(
            "stock.immediate.transfer",
            "Immediate Transfer",
            "id",
            ALL,
            B::new()
                .f("pick_ids", Many2many("stock.picking"), "Pick")
                .f("show_transfers", Bool, "Show Transfers")
                .f(
                    "immediate_transfer_line_ids",
                    One2many("stock.immediate.transfer.line", "immediate_transfer_id"),
                    "Immediate Transfer Lines",
                ),
        );
        add(
            "stock.immediate.transfer.line",
            "Immediate Transfer Line",
            "id",
            ALL,
            B::new()
                .f(
                    "immediate_transfer_id",
                    Many2one("stock.immediate.transfer"),
                    "Immediate Transfer",
                )
                .f("picking_id", Many2one("stock.picking"), "Transfer")
                .f("to_immediate", Bool, "To Process"),
        );
    }
    add(
        "expiry.picking.confirmation",
        "Confirm Expiry",
        "id",
        ALL,
        B::new()
            .f("picking_ids", Many2many("stock.picking"), "Picking")
            .f("lot_ids", Many2many("stock.lot"), "Lot")
            .c("description", Char, "Description")
            .c("show_lots", Bool, "Show Lots"),
    );
    add(
        "ir.model.data",
        "Model Data",
        "module, model, name",
        NONE_ADMIN,
        B::new()
            .r("name", Char, "External Identifier")
            .r("module", Char, "Module")
            .r("model", Char, "Model Name")
            .f("res_id", Int, "Record ID")
            .f("noupdate", Bool, "Non Updatable")
            .c("complete_name", Char, "Complete ID"),
    );
    add(
        "res.config.settings",
        "Config Settings",
        "id",
        NONE_SETTINGS,
        B::new()
            .f("group_stock_multi_locations", Bool, "Storage Locations")
            .f("group_stock_production_lot", Bool, "Lots & Serial Numbers")
            .f("module_product_expiry", Bool, "Expiration Dates"),
    );
    add(
        "barcode.nomenclature",
        "Barcode Nomenclature",
        "id",
        READ,
        B::new().r("name", Char, "Barcode Nomenclature").f(
            "is_gs1_nomenclature",
            Bool,
            "Is GS1 Nomenclature",
        ),
    );
    Schema { models }
}
