//! Plain GTIN-8, GTIN-12, GTIN-13 and GTIN-14 (EAN/UPC/ITF-14).

use crate::Summary;
use crate::barcode::check::gs1_mod10;

/// A GTIN with a valid check digit, as its 14-digit form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gtin {
    pub gtin14: String,
}

impl Gtin {
    pub fn summary(&self) -> Summary {
        Summary {
            kind: "gtin",
            gtin: Some(self.gtin14.clone()),
            ..Summary::default()
        }
    }

    /// The GTIN-14, the canonical key (GTIN-8/12/13 with leading zeros).
    pub fn as_str(&self) -> &str {
        &self.gtin14
    }
}

use crate::{DecodeError, ErrorKind};

/// Decode a plain GTIN-8/12/13/14 with its check digit.
pub fn parse(data: &[u8]) -> Result<Gtin, DecodeError> {
    if data.is_empty() {
        return Err(DecodeError::new(
            ErrorKind::Empty,
            0,
            data,
            "nothing to decode",
        ));
    }
    if let Some(i) = data.iter().position(|b| !b.is_ascii_digit()) {
        return Err(DecodeError::new(
            ErrorKind::InvalidCharacter,
            i,
            data,
            "a GTIN has digits only",
        ));
    }
    match data.len() {
        8 | 12 | 13 | 14 => {}
        n if n > 14 => {
            return Err(DecodeError::new(
                ErrorKind::TooLong,
                0,
                data,
                format!("a GTIN has 8, 12, 13 or 14 digits, this has {n}"),
            ));
        }
        n => {
            return Err(DecodeError::new(
                ErrorKind::TooShort,
                0,
                data,
                format!("a GTIN has 8, 12, 13 or 14 digits, this has {n}"),
            ));
        }
    }
    let (&got, body) = data
        .split_last()
        .ok_or_else(|| DecodeError::new(ErrorKind::Empty, 0, data, "nothing to decode"))?;
    let want = gs1_mod10(body)
        .ok_or_else(|| DecodeError::new(ErrorKind::InvalidCharacter, 0, data, "digits only"))?;
    if got != want {
        return Err(DecodeError::new(
            ErrorKind::CheckDigit,
            data.len() - 1,
            data,
            format!(
                "GTIN check digit is {}, expected {}",
                char::from(got),
                char::from(want)
            ),
        ));
    }
    let mut gtin14 = "0".repeat(14 - data.len());
    gtin14.push_str(&String::from_utf8_lossy(data));
    Ok(Gtin { gtin14 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pads_to_fourteen_digits() {
        assert_eq!(parse(b"9501101020917").unwrap().gtin14, "09501101020917");
        assert_eq!(parse(b"09501101020917").unwrap().gtin14, "09501101020917");
        assert_eq!(parse(b"96385074").unwrap().gtin14, "00000096385074");
        assert_eq!(parse(b"614141000036").unwrap().gtin14, "00614141000036");
    }

    #[test]
    fn rejects_bad_gtins() {
        let e = parse(b"9501101020918").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::CheckDigit, 12));
        assert_eq!(e.message, "GTIN check digit is 8, expected 7");
        assert_eq!(
            parse(b"950110102091").unwrap_err().kind,
            ErrorKind::CheckDigit
        );
        assert_eq!(parse(b"123").unwrap_err().kind, ErrorKind::TooShort);
        assert_eq!(parse(b"1234567890").unwrap_err().kind, ErrorKind::TooShort);
        assert_eq!(
            parse(b"123456789012345").unwrap_err().kind,
            ErrorKind::TooLong
        );
        let e = parse(b"95011010209A7").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::InvalidCharacter, 11));
        assert_eq!(parse(b"").unwrap_err().kind, ErrorKind::Empty);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse(&data);
        }

        #[test]
        fn accepts_every_gtin_with_its_check_digit(body in "[0-9]{13}") {
            let check = gs1_mod10(body.as_bytes()).unwrap();
            let mut g = body.into_bytes();
            g.push(check);
            prop_assert!(parse(&g).is_ok());
            let last = g.len() - 1;
            g[last] = b'0' + (check - b'0' + 1) % 10;
            prop_assert_eq!(parse(&g).unwrap_err().kind, ErrorKind::CheckDigit);
        }
    }
}
