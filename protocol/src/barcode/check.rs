//! Check digits shared by several standards.

/// The GS1 mod-10 check digit of `digits` (ASCII digits, without the check digit): weights
/// 3, 1, 3, … from the rightmost digit. `None` if any byte is not a digit.
pub fn gs1_mod10(digits: &[u8]) -> Option<u8> {
    let mut sum: u32 = 0;
    for (i, &b) in digits.iter().rev().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        let d = u32::from(b - b'0');
        sum += if i % 2 == 0 { d * 3 } else { d };
    }
    u8::try_from((10 - sum % 10) % 10).ok().map(|c| b'0' + c)
}

/// Whether the last digit of `digits` is the GS1 mod-10 check digit of the others.
pub fn gs1_mod10_ok(digits: &[u8]) -> bool {
    match digits.split_last() {
        Some((&check, body)) if !body.is_empty() => gs1_mod10(body) == Some(check),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples_from_the_gs1_general_specifications() {
        assert_eq!(gs1_mod10(b"950110102091"), Some(b'7'));
        assert_eq!(gs1_mod10(b"10614141123456789"), Some(b'7'));
        assert!(gs1_mod10_ok(b"09501101020917"));
        assert!(!gs1_mod10_ok(b"09501101020918"));
        assert!(!gs1_mod10_ok(b"7"));
        assert_eq!(gs1_mod10(b"12a"), None);
    }
}
