//! Reading the folded format: one validator for every reader in perfkit.

use std::{borrow::Cow, io::BufRead};

/// A malformed line in folded input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FoldedError {
    /// A line without a trailing count.
    #[error("line {line}: expected `frame;frame;... COUNT`, got {text:?}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// The line, shortened.
        text: String,
    },
    /// Reading failed.
    #[error("reading folded stacks failed")]
    Io(#[from] std::io::Error),
}

/// One folded line: `Ok(None)` for a blank line, `Ok(Some((stack, count)))`,
/// or `Err(())` when it is not a folded line. The count is a non-negative
/// integer, or a finite non-negative number (some tools write fractions),
/// rounded down; counts beyond `u64::MAX` saturate. The stack is everything
/// before the last space, and must not be empty.
#[allow(clippy::result_unit_err)]
pub fn parse_line(line: &str) -> Result<Option<(&str, u64)>, ()> {
    let line = line.trim_end();
    if line.is_empty() {
        return Ok(None);
    }
    let (stack, count) = line.rsplit_once(' ').ok_or(())?;
    if stack.is_empty() || count.is_empty() {
        return Err(());
    }
    let count = if count.bytes().all(|b| b.is_ascii_digit()) {
        count.parse::<u64>().unwrap_or(u64::MAX)
    } else {
        match count.parse::<f64>() {
            Ok(c) if c.is_finite() && c >= 0.0 && count.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
                // Saturating float-to-int conversion.
                c as u64
            }
            _ => return Err(()),
        }
    };
    Ok(Some((stack, count)))
}

/// Parses folded stacks into (stack, count) pairs, in input order. Blank
/// lines are skipped.
pub fn parse_folded<R: BufRead>(input: R) -> Result<Vec<(String, u64)>, FoldedError> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        match parse_line(&line) {
            Ok(Some((stack, count))) => out.push((stack.to_owned(), count)),
            Ok(None) => {}
            Err(()) => {
                return Err(FoldedError::Malformed { line: i + 1, text: line.trim_end().chars().take(80).collect() });
            }
        }
    }
    Ok(out)
}

/// A stack whose last frame ends in a space and a number (`retry 3`) would
/// read, with its count, as a differential line (`stack BEFORE AFTER`): the
/// space is replaced by a no-break space, which looks the same.
pub fn disambiguate(stack: &str) -> Cow<'_, str> {
    match stack.rsplit_once(' ') {
        Some((head, tail))
            if !tail.is_empty()
                && tail.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && tail.bytes().any(|b| b.is_ascii_digit()) =>
        {
            Cow::Owned(format!("{head}\u{a0}{tail}"))
        }
        _ => Cow::Borrowed(stack),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_with_spaces_in_frames() {
        let input = "app;main;operator new(unsigned long) 4\n\napp;main 1\n";
        let parsed = parse_folded(input.as_bytes()).unwrap();
        assert_eq!(parsed, vec![("app;main;operator new(unsigned long)".to_owned(), 4), ("app;main".to_owned(), 1)]);
    }

    #[test]
    fn rejects_lines_without_counts_and_bad_counts() {
        let err = parse_folded("app;main\n".as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("line 1:"), "{err}");
        for bad in ["app;main x", " 5", "a inf", "a NaN", "a -1", "a 1e3", "a "] {
            assert!(parse_line(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_line("a 2.7"), Ok(Some(("a", 2))));
        assert_eq!(parse_line("a 99999999999999999999999"), Ok(Some(("a", u64::MAX))), "saturates");
    }

    #[test]
    fn names_ending_in_numbers_are_not_read_as_differential_counts() {
        assert_eq!(disambiguate("app;retry 3"), "app;retry\u{a0}3");
        assert_eq!(disambiguate("app;main"), "app;main");
        assert_eq!(disambiguate("app;v 1.2"), "app;v\u{a0}1.2");
        assert_eq!(disambiguate("app;x ."), "app;x .");
    }
}
