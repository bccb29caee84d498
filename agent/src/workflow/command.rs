//! Command barcodes: `{prefix}KEYWORD` or `{prefix}KEYWORD:argument`.
//!
//! The prefix and the keyword match without regard to ASCII case (`tm:done` is `TM:DONE`); the
//! argument is taken exactly as scanned, and must be UTF-8 text.

use tallyman_protocol::error::escape;

use super::Mode;

/// A command barcode, its argument not yet validated (the workflow turns it into a
/// [`Location`](tallyman_protocol::event::Location), a reference or a quantity and reports a bad one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    /// `RECEIVE`, `TRANSFER`, `CONSUME`.
    Mode(Mode),
    /// `FROM:<location>`.
    From(String),
    /// `TO:<location>`.
    To(String),
    /// `LOC:<location>`: the one location the mode needs.
    Loc(String),
    /// `REF:<reference>`.
    Ref(String),
    /// `QTY:<n>`: the quantity of the next item.
    Qty(String),
    /// `DONE`: commit the session.
    Done,
    /// `CANCEL`: discard the session.
    Cancel,
}

/// What a scan is, seen as a possible command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Parsed {
    /// It does not start with the prefix: a barcode to decode.
    NotCommand,
    Command(Command),
    /// It starts with the prefix but is not a valid command; the reason says why and what is.
    Invalid(String),
}

/// Keywords that take no argument.
const BARE: [&str; 5] = ["RECEIVE", "TRANSFER", "CONSUME", "DONE", "CANCEL"];
/// Keywords that take one: the keyword, the argument's placeholder and what it is.
const WITH_ARG: [(&str, &str, &str); 5] = [
    ("FROM", "location", "location"),
    ("TO", "location", "location"),
    ("LOC", "location", "location"),
    ("REF", "reference", "reference"),
    ("QTY", "n", "quantity"),
];

/// Every command, written with `prefix`, for messages.
pub(super) fn list(prefix: &str) -> String {
    let mut out: Vec<String> = Vec::with_capacity(BARE.len() + WITH_ARG.len());
    out.extend(
        BARE.iter()
            .take(3)
            .map(|k| format!("{prefix}{k}"))
            .chain(
                WITH_ARG
                    .iter()
                    .map(|(k, a, _)| format!("{prefix}{k}:<{a}>")),
            )
            .chain(BARE.iter().skip(3).map(|k| format!("{prefix}{k}"))),
    );
    out.join(", ")
}

/// Read `data` (the scan without its symbology identifier) as a command with `prefix`. An empty
/// prefix turns commands off.
pub(super) fn parse(data: &[u8], prefix: &str) -> Parsed {
    let p = prefix.as_bytes();
    if p.is_empty() {
        return Parsed::NotCommand;
    }
    match data.get(..p.len()) {
        Some(head) if head.eq_ignore_ascii_case(p) => {}
        _ => return Parsed::NotCommand,
    }
    let rest = data.get(p.len()..).unwrap_or_default();
    let (keyword, arg) = match rest.iter().position(|&b| b == b':') {
        Some(i) => (
            rest.get(..i).unwrap_or_default(),
            Some(rest.get(i + 1..).unwrap_or_default()),
        ),
        None => (rest, None),
    };
    let keyword = keyword.to_ascii_uppercase();
    let shown = escape(&keyword);
    if let Some(bare) = BARE.iter().find(|k| k.as_bytes() == keyword.as_slice()) {
        if arg.is_some() {
            return Parsed::Invalid(format!("{prefix}{bare} takes no argument"));
        }
        let command = match *bare {
            "RECEIVE" => Command::Mode(Mode::Receive),
            "TRANSFER" => Command::Mode(Mode::Transfer),
            "CONSUME" => Command::Mode(Mode::Consume),
            "DONE" => Command::Done,
            _ => Command::Cancel,
        };
        return Parsed::Command(command);
    }
    let Some((name, placeholder, what)) = WITH_ARG
        .iter()
        .find(|(k, _, _)| k.as_bytes() == keyword.as_slice())
    else {
        return Parsed::Invalid(format!(
            "unknown command {prefix}{shown}; the commands are {}",
            list(prefix)
        ));
    };
    let arg = match arg {
        Some(a) if !a.is_empty() => a,
        _ => {
            return Parsed::Invalid(format!(
                "{prefix}{name} needs a {what}: {prefix}{name}:<{placeholder}>"
            ));
        }
    };
    let Ok(text) = std::str::from_utf8(arg) else {
        return Parsed::Invalid(format!(
            "the {what} of {prefix}{name} is not UTF-8 text: \"{}\"",
            escape(arg)
        ));
    };
    let text = text.to_string();
    Parsed::Command(match *name {
        "FROM" => Command::From(text),
        "TO" => Command::To(text),
        "LOC" => Command::Loc(text),
        "REF" => Command::Ref(text),
        _ => Command::Qty(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &[u8]) -> Parsed {
        parse(s, "TM:")
    }

    #[test]
    fn keywords_ignore_case_arguments_do_not() {
        assert_eq!(cmd(b"TM:DONE"), Parsed::Command(Command::Done));
        assert_eq!(cmd(b"tm:done"), Parsed::Command(Command::Done));
        assert_eq!(
            cmd(b"Tm:Receive"),
            Parsed::Command(Command::Mode(Mode::Receive))
        );
        assert_eq!(
            cmd(b"tm:to:WH/Stock/Shelf 2"),
            Parsed::Command(Command::To("WH/Stock/Shelf 2".into()))
        );
        assert_eq!(
            cmd(b"TM:REF:po:42"),
            Parsed::Command(Command::Ref("po:42".into()))
        );
        assert_eq!(cmd(b"0109506000134352"), Parsed::NotCommand);
        assert_eq!(cmd(b"TM"), Parsed::NotCommand);
        assert_eq!(parse(b"TM:DONE", ""), Parsed::NotCommand);
        assert_eq!(parse(b"#done", "#"), Parsed::Command(Command::Done));
    }

    #[test]
    fn bad_commands_say_what_is_expected() {
        let Parsed::Invalid(r) = cmd(b"TM:FINISH") else {
            panic!("not invalid")
        };
        assert_eq!(
            r,
            "unknown command TM:FINISH; the commands are TM:RECEIVE, TM:TRANSFER, TM:CONSUME, \
             TM:FROM:<location>, TM:TO:<location>, TM:LOC:<location>, TM:REF:<reference>, \
             TM:QTY:<n>, TM:DONE, TM:CANCEL"
        );
        assert_eq!(
            cmd(b"TM:DONE:now"),
            Parsed::Invalid("TM:DONE takes no argument".into())
        );
        assert_eq!(
            cmd(b"TM:QTY:"),
            Parsed::Invalid("TM:QTY needs a quantity: TM:QTY:<n>".into())
        );
        assert_eq!(
            cmd(b"TM:FROM"),
            Parsed::Invalid("TM:FROM needs a location: TM:FROM:<location>".into())
        );
        assert_eq!(
            cmd(b"TM:REF:\xff"),
            Parsed::Invalid("the reference of TM:REF is not UTF-8 text: \"\\xff\"".into())
        );
        let Parsed::Invalid(r) = cmd(b"TM:\x1d") else {
            panic!("not invalid")
        };
        assert!(r.starts_with("unknown command TM:\\x1d;"), "{r}");
    }
}
