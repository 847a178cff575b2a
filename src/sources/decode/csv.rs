//! CSV → Arrow with arrow-csv: columns matched by header name (or by position without a
//! header), timestamps read as text and converted per `time_format`, bad rows isolated by
//! bisection.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef};
use arrow::compute::concat_batches;
use arrow::csv::reader::{Decoder, ReaderBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::{finish_batch, is_time, readable, Decoded};
use crate::sources::rejected::{PartitionId, RejectedRecord};
use crate::sources::schema::SourceSchema;

/// Decodes one CSV chunk. With `has_header` the first line names the columns (matched to
/// declared columns by name, case-insensitively; extra columns are ignored, missing
/// nullable ones become NULL); without it, columns are taken in declared order. Line
/// numbers in rejected records count from 1 at the first line of `input`.
pub fn decode_csv(
    schema: &Arc<SourceSchema>,
    partition: PartitionId,
    input: &[u8],
    has_header: bool,
    delimiter: u8,
) -> Decoded {
    let mut decoder = CsvDecoder::new(schema.clone(), delimiter);
    let mut first_line = 1;
    let mut body = input;
    if has_header {
        let end = input
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(input.len());
        decoder.set_header(&input[..end]);
        body = &input[(end + 1).min(input.len())..];
        first_line = 2;
    }
    decoder.decode(partition, first_line, body)
}

/// A CSV decoder bound to a source and (optionally) a header line, for decoding a file in
/// chunks of records.
#[derive(Debug)]
pub struct CsvDecoder {
    schema: Arc<SourceSchema>,
    delimiter: u8,
    /// Schema of the CSV records as they appear (header order, raw types).
    file: SchemaRef,
    /// For each declared column, its index in `file` if present.
    mapping: Vec<Option<usize>>,
}

impl CsvDecoder {
    /// A decoder for header-less CSV whose columns are in declared order.
    pub fn new(schema: Arc<SourceSchema>, delimiter: u8) -> Self {
        let names: Vec<String> = schema
            .arrow
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut d = Self {
            schema,
            delimiter,
            file: Arc::new(Schema::empty()),
            mapping: Vec::new(),
        };
        d.set_columns(&names);
        d
    }

    /// Sets the column names from a header line.
    pub fn set_header(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line
            .trim_end_matches(['\r', '\n'])
            .trim_start_matches('\u{feff}');
        let names: Vec<String> = line
            .split(self.delimiter as char)
            .map(|n| n.trim().trim_matches('"').to_string())
            .collect();
        self.set_columns(&names);
    }

    fn set_columns(&mut self, names: &[String]) {
        let declared = self.schema.arrow.fields();
        let mut mapping = vec![None; declared.len()];
        let fields: Vec<Field> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                match declared
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(name))
                {
                    Some(d) if mapping[d].is_none() => {
                        mapping[d] = Some(i);
                        let f = &declared[d];
                        let dt = if is_time(f.data_type()) {
                            DataType::Utf8
                        } else {
                            f.data_type().clone()
                        };
                        Field::new(format!("c{i}"), dt, true)
                    }
                    _ => Field::new(format!("c{i}"), DataType::Utf8, true),
                }
            })
            .collect();
        self.file = Arc::new(Schema::new(fields));
        self.mapping = mapping;
    }

    fn build(&self, rows: usize) -> Decoder {
        ReaderBuilder::new(self.file.clone())
            .with_header(false)
            .with_delimiter(self.delimiter)
            .with_batch_size(rows.clamp(1, 1 << 20))
            .build_decoder()
    }

    /// Decodes header-less CSV records; `first_line_no` is the line number of `input`'s
    /// first line.
    pub fn decode(&mut self, partition: PartitionId, first_line_no: i64, input: &[u8]) -> Decoded {
        let mut records = records(first_line_no, input);
        if records.is_empty() {
            return Decoded::default();
        }
        let mut rejected = Vec::new();
        // arrow-csv checks UTF-8 over a chunk's field bytes joined together, not field by
        // field: in a record that is not UTF-8 (`\xc3,\xa9`), a delimiter can split a
        // character and arrow-csv then hands out invalid `&str`s (undefined behaviour). In a
        // UTF-8 record an ASCII delimiter or quote never falls inside a character, so records
        // are checked first (one pass over the chunk when it is all UTF-8).
        if !self.delimiter.is_ascii() {
            let reason = format!(
                "the delimiter byte 0x{:02x} is not an ASCII character",
                self.delimiter
            );
            return Decoded {
                batch: None,
                rejected: records
                    .iter()
                    .map(|r| reject(partition, *r, &reason))
                    .collect(),
            };
        }
        if std::str::from_utf8(input).is_err() {
            records.retain(|r| match std::str::from_utf8(r.1) {
                Ok(_) => true,
                Err(e) => {
                    let why = format!("invalid UTF-8 at byte {} of the record", e.valid_up_to());
                    rejected.push(reject(partition, *r, &why));
                    false
                }
            });
            if records.is_empty() {
                return Decoded {
                    batch: None,
                    rejected,
                };
            }
        }
        if let Ok((batch, bad)) = self.decode_records(&records) {
            rejected.extend(
                bad.into_iter()
                    .map(|(row, reason)| reject(partition, records[row], &reason)),
            );
            rejected.sort_by_key(|r| r.position);
            return Decoded {
                batch: (batch.num_rows() > 0).then_some(batch),
                rejected,
            };
        }
        let mut good = Vec::new();
        let mut stack = vec![&records[..]];
        while let Some(range) = stack.pop() {
            match self.decode_records(range) {
                Ok((batch, bad)) => {
                    good.push(batch);
                    rejected.extend(
                        bad.iter()
                            .map(|(row, why)| reject(partition, range[*row], why)),
                    );
                }
                Err(reason) if range.len() == 1 => {
                    rejected.push(reject(partition, range[0], &reason))
                }
                Err(_) => {
                    let (left, right) = range.split_at(range.len() / 2);
                    stack.push(right);
                    stack.push(left);
                }
            }
        }
        rejected.sort_by_key(|r| r.position);
        good.retain(|b| b.num_rows() > 0);
        let batch = match good.len() {
            0 => None,
            1 => good.pop(),
            _ => Some(concat_batches(&self.schema.arrow, &good).expect("same schema")),
        };
        Decoded {
            batch: batch.filter(|b| b.num_rows() > 0),
            rejected,
        }
    }

    #[allow(clippy::type_complexity)]
    fn decode_records(
        &self,
        records: &[(i64, &[u8])],
    ) -> Result<(RecordBatch, Vec<(usize, String)>), String> {
        let mut decoder = self.build(records.len());
        let mut batches = Vec::new();
        let err = |e: arrow::error::ArrowError| self.clean(&e.to_string());
        for (_, rec) in records {
            for chunk in [*rec, b"\n"] {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let read = decoder.decode(rest).map_err(err)?;
                    rest = &rest[read..];
                    if read == 0 {
                        batches.extend(decoder.flush().map_err(err)?);
                    }
                }
            }
        }
        batches.extend(decoder.flush().map_err(err)?);
        let raw = concat_batches(&self.file, &batches).map_err(|e| e.to_string())?;
        if raw.num_rows() != records.len() {
            return Err(format!(
                "expected {} records, decoded {}",
                records.len(),
                raw.num_rows()
            ));
        }
        let columns: Vec<ArrayRef> = self
            .schema
            .arrow
            .fields()
            .iter()
            .zip(&self.mapping)
            .map(|(f, m)| match m {
                Some(i) => raw.column(*i).clone(),
                None => new_null_array(f.data_type(), raw.num_rows()),
            })
            .collect();
        finish_batch(&self.schema, columns, raw.num_rows())
    }

    /// Rewrites arrow-csv messages: column indices become names, relative line numbers and
    /// row dumps are dropped (the rejected record carries the real line and raw text).
    fn clean(&self, message: &str) -> String {
        let mut m = readable(message, &self.schema);
        if let Some(i) = m.find(". Row data:") {
            m.truncate(i);
        }
        for (d, idx) in self.mapping.iter().enumerate() {
            if let Some(i) = idx {
                let name = self.schema.arrow.field(d).name();
                m = m.replace(
                    &format!("for column {i} "),
                    &format!("for column '{name}' "),
                );
            }
        }
        for i in 0..3 {
            m = m.replace(&format!(" at line {i}"), "");
            m = m.replace(&format!(" for line {i},"), ":");
        }
        m
    }
}

fn reject(partition: PartitionId, (line_no, raw): (i64, &[u8]), reason: &str) -> RejectedRecord {
    RejectedRecord::new(
        partition,
        Some(line_no),
        raw,
        format!("line {line_no}: {reason}"),
    )
}

/// Splits header-less CSV text into chunks of at most `max_records` records (a quoted
/// newline does not end a record), each with the line number it starts on.
pub fn csv_chunks(input: &[u8], first_line_no: i64, max_records: usize) -> Vec<(i64, &[u8])> {
    let recs = records(first_line_no, input);
    recs.chunks(max_records.max(1))
        .map(|chunk| {
            let (line, first) = chunk[0];
            let (_, last) = chunk[chunk.len() - 1];
            // Records are sub-slices of `input`: the chunk spans from the first to the last.
            let start = first.as_ptr() as usize - input.as_ptr() as usize;
            let end = last.as_ptr() as usize - input.as_ptr() as usize + last.len();
            (line, &input[start..end])
        })
        .collect()
}

/// Splits CSV text into records (a newline inside double quotes does not end a record),
/// skipping blank lines; each record comes with the line number it starts on.
pub(crate) fn records(first_line_no: i64, input: &[u8]) -> Vec<(i64, &[u8])> {
    let mut out = Vec::new();
    let mut in_quote = false;
    let mut start = 0;
    let mut line = first_line_no;
    let mut start_line = line;
    for (i, b) in input.iter().enumerate() {
        match b {
            b'"' => in_quote = !in_quote,
            b'\n' => {
                line += 1;
                if !in_quote {
                    push_record(&mut out, start_line, &input[start..i]);
                    start = i + 1;
                    start_line = line;
                }
            }
            _ => {}
        }
    }
    push_record(&mut out, start_line, &input[start..]);
    out
}

fn push_record<'a>(out: &mut Vec<(i64, &'a [u8])>, line: i64, rec: &'a [u8]) {
    let rec = rec.strip_suffix(b"\r").unwrap_or(rec);
    if !rec.iter().all(u8::is_ascii_whitespace) {
        out.push((line, rec));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::schema::{TimeFormat, EVENT_TIME_TYPE};
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, TimestampMillisecondType};

    #[test]
    fn header_by_name_and_bad_rows() {
        let schema = Arc::new(
            SourceSchema::new(
                "t",
                vec![
                    Field::new("ts", EVENT_TIME_TYPE, false),
                    Field::new("x", DataType::Float64, true),
                    Field::new("y", DataType::Float64, true),
                ],
                Some(("ts".into(), 0)),
                TimeFormat::EpochSeconds,
            )
            .unwrap(),
        );
        let input = b"x,extra,ts\n1.5,\"a,\nb\",10\nnope,z,11\n2.5,z,12.25\n3,z,later\n";
        let out = decode_csv(&schema, 0, input, true, b',');
        let b = out.batch.unwrap();
        assert_eq!(
            b.column(0)
                .as_primitive::<TimestampMillisecondType>()
                .values(),
            &[10_000, 12_250]
        );
        assert_eq!(
            b.column(1).as_primitive::<Float64Type>().values(),
            &[1.5, 2.5]
        );
        assert_eq!(b.column(2).null_count(), 2);
        let pos: Vec<_> = out.rejected.iter().map(|r| r.position.unwrap()).collect();
        assert_eq!(pos, vec![4, 6], "{:?}", out.rejected);
        assert!(
            out.rejected[0].reason.contains("'x'"),
            "{}",
            out.rejected[0].reason
        );
        assert!(
            out.rejected[1].reason.contains("later"),
            "{}",
            out.rejected[1].reason
        );
    }
}
