//! Reading the folded format.

use std::io::BufRead;

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

/// Parses folded stacks into (stack, count) pairs, in input order. Blank
/// lines are skipped; a count may be fractional in some tools' output and is
/// rounded down.
pub fn parse_folded<R: BufRead>(input: R) -> Result<Vec<(String, u64)>, FoldedError> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let malformed = || FoldedError::Malformed { line: i + 1, text: line.chars().take(80).collect() };
        let (stack, count) = line.rsplit_once(' ').ok_or_else(malformed)?;
        let count = count
            .parse::<u64>()
            .ok()
            .or_else(|| count.parse::<f64>().ok().filter(|c| c.is_finite() && *c >= 0.0).map(|c| c as u64))
            .ok_or_else(malformed)?;
        if stack.is_empty() {
            return Err(malformed());
        }
        out.push((stack.to_owned(), count));
    }
    Ok(out)
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
    fn rejects_lines_without_counts() {
        let err = parse_folded("app;main\n".as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("line 1:"), "{err}");
        assert!(parse_folded("app;main x\n".as_bytes()).is_err());
        assert!(parse_folded(" 5\n".as_bytes()).is_err());
    }
}
