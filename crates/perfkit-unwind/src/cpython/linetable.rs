//! Line numbers from CPython's line tables, as `PyCode_Addr2Line` computes
//! them in each version. The tables are the target's bytes: a malformed
//! one gives `None`, never a panic or a loop longer than the table.

use super::offsets::LineTable;

/// The line of the instruction at `offset` (in bytes from the start of
/// the code) of a code object whose first line is `first_line`. `None`
/// when the table gives no line there.
pub(crate) fn line(kind: LineTable, table: &[u8], first_line: i64, offset: i64) -> Option<u32> {
    if offset < 0 {
        // Before the first instruction (a frame just created).
        return u32::try_from(first_line).ok();
    }
    let line = match kind {
        LineTable::Lnotab => lnotab(table, first_line, offset),
        LineTable::Pep626 => pep626(table, first_line, offset),
        LineTable::Locations => locations(table, first_line, offset / 2),
    }?;
    u32::try_from(line).ok().filter(|&l| l > 0)
}

/// 3.8, 3.9 `co_lnotab`: pairs of (bytes, signed lines) increments.
fn lnotab(table: &[u8], first_line: i64, offset: i64) -> Option<i64> {
    let mut line = first_line;
    let mut addr = 0i64;
    for pair in table.chunks_exact(2) {
        addr += i64::from(pair[0]);
        if addr > offset {
            break;
        }
        line += i64::from(pair[1] as i8);
    }
    Some(line)
}

/// 3.10 `co_linetable`: pairs of (bytes, signed lines) where -128 lines
/// means "no line" for that range.
fn pep626(table: &[u8], first_line: i64, offset: i64) -> Option<i64> {
    let mut line = first_line;
    let mut end = 0i64;
    for pair in table.chunks_exact(2) {
        let start = end;
        end += i64::from(pair[0]);
        let delta = pair[1] as i8;
        let here = if delta == -128 {
            None
        } else {
            line += i64::from(delta);
            Some(line)
        };
        if start <= offset && offset < end {
            return here;
        }
    }
    None
}

/// 3.11+ location table (`Objects/locations.md`): entries of a first byte
/// `1cccclll` (code, length − 1 in code units) and the code's varints;
/// `index` is in code units.
fn locations(table: &[u8], first_line: i64, index: i64) -> Option<i64> {
    let mut r = Reader { table, pos: 0 };
    let mut line = first_line;
    let mut addr = 0i64;
    while let Some(first) = r.byte() {
        if first & 0x80 == 0 {
            return None;
        }
        let code = (first >> 3) & 15;
        let length = i64::from(first & 7) + 1;
        let here = match code {
            15 => None,
            14 => {
                line = line.checked_add(r.svarint()?)?;
                r.varint()?;
                r.varint()?;
                r.varint()?;
                Some(line)
            }
            13 => {
                line = line.checked_add(r.svarint()?)?;
                Some(line)
            }
            10..=12 => {
                line += i64::from(code - 10);
                r.byte()?;
                r.byte()?;
                Some(line)
            }
            _ => {
                r.byte()?;
                Some(line)
            }
        };
        if index < addr + length {
            return here;
        }
        addr += length;
    }
    None
}

struct Reader<'a> {
    table: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.table.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// 6 bits a byte, 0x40 for "more".
    fn varint(&mut self) -> Option<u64> {
        let mut b = self.byte()?;
        let mut value = u64::from(b & 63);
        let mut shift = 6;
        while b & 64 != 0 {
            b = self.byte()?;
            if shift >= 60 {
                return None;
            }
            value |= u64::from(b & 63) << shift;
            shift += 6;
        }
        Some(value)
    }

    fn svarint(&mut self) -> Option<i64> {
        let v = self.varint()?;
        let magnitude = i64::try_from(v >> 1).ok()?;
        Some(if v & 1 != 0 { -magnitude } else { magnitude })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lnotab_adds_increments_up_to_the_offset() {
        // Lines 10 (bytes 0..6), 11 (6..20), 9 (20..): negative deltas too.
        let table = [6, 1, 14, 0xfe];
        assert_eq!(line(LineTable::Lnotab, &table, 10, 0), Some(10));
        assert_eq!(line(LineTable::Lnotab, &table, 10, 6), Some(11));
        assert_eq!(line(LineTable::Lnotab, &table, 10, 19), Some(11));
        assert_eq!(line(LineTable::Lnotab, &table, 10, 20), Some(9));
        assert_eq!(line(LineTable::Lnotab, &table, 10, -1), Some(10));
        assert_eq!(line(LineTable::Lnotab, &[1], 10, 4), Some(10), "an odd byte is ignored");
    }

    #[test]
    fn pep626_ranges_and_missing_lines() {
        // 0..4 line 5 (+0 from 5), 4..8 no line, 8..12 line 7.
        let table = [4, 0, 4, 0x80, 4, 2];
        assert_eq!(line(LineTable::Pep626, &table, 5, 2), Some(5));
        assert_eq!(line(LineTable::Pep626, &table, 5, 4), None);
        assert_eq!(line(LineTable::Pep626, &table, 5, 10), Some(7));
        assert_eq!(line(LineTable::Pep626, &table, 5, 12), None, "past the table");
    }

    #[test]
    fn locations_entries_of_every_form() {
        let table = [
            0x80 | (13 << 3) | 1,
            2, // no column, +1 line (svarint 2), 2 units: 0..2 line 11
            0x80 | (3 << 3),
            0x05, // short form, same line, 1 unit: 2 line 11
            0x80 | (11 << 3) | 2,
            4,
            9,                    // one line form, +1, 3 units: 3..6 line 12
            0x80 | (15 << 3),     // no location, 1 unit: 6
            0x80 | (14 << 3) | 1, // long form, -3 (svarint 7), 2 units: 7..9 line 9
            7,
            0,
            1,
            1,
            0x80 | (13 << 3),
            0x40 | 8,
            1, // no column, +(8 | 1 << 6) / 2 = +36: 9 line 45
        ];
        let at = |unit: i64| line(LineTable::Locations, &table, 10, unit * 2);
        assert_eq!((at(0), at(1), at(2)), (Some(11), Some(11), Some(11)));
        assert_eq!((at(3), at(5), at(6)), (Some(12), Some(12), None));
        assert_eq!((at(7), at(8), at(9), at(10)), (Some(9), Some(9), Some(45), None));
    }

    #[test]
    fn malformed_location_tables_give_no_line() {
        // A continuation byte where an entry starts; a varint cut short; a
        // varint longer than 64 bits.
        assert_eq!(line(LineTable::Locations, &[0x05], 1, 0), None);
        assert_eq!(line(LineTable::Locations, &[0x80 | (13 << 3), 0x40], 1, 0), None);
        let long = [0x80 | (13 << 3), 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 1];
        assert_eq!(line(LineTable::Locations, &long, 1, 0), None);
        // A line pushed below 1 is no line.
        assert_eq!(line(LineTable::Lnotab, &[0, 0x80], 1, 0), None);
    }
}
