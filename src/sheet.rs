//! Reads a ledger file into rows of cells: .xlsx / .xls / .ods through calamine, .csv through the
//! csv crate after decoding (UTF-8 with or without BOM, else GBK). The parsing of what the cells
//! mean is in `rectify_import::ledger`.

use std::io::{Cursor, Read};
use std::path::Path;

use calamine::Reader;
use rectify_engine::Lang;
use rectify_import::decode::{self, Encoding, Wanted};
use rectify_import::ledger::{Cell, excel_serial, find_header};

use crate::error::{CliError, CliResult};

/// The largest ledger file read. Real ledgers are well under a megabyte; a bigger file is not a
/// ledger and is refused before it is read.
pub const MAX_LEDGER_BYTES: u64 = 20 * 1024 * 1024;

/// The rows of the sheet that holds the ledger, and where they start.
pub struct Sheet {
    pub rows: Vec<Vec<Cell>>,
    /// The sheet row number (1-based) of `rows[0]`.
    pub first_row: usize,
    pub name: String,
    /// For CSV files, the encoding they were read with.
    pub encoding: Option<Encoding>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Workbook,
    Csv,
}

fn kind_of(path: &Path, head: &[u8]) -> Kind {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => Kind::Workbook,
        "csv" | "txt" => Kind::Csv,
        // Zip (xlsx, ods) or OLE (xls) signatures.
        _ if head.starts_with(b"PK\x03\x04") || head.starts_with(b"\xD0\xCF\x11\xE0") => {
            Kind::Workbook
        }
        _ => Kind::Csv,
    }
}

/// Checks the size before reading, then reads the whole file.
pub fn read_limited(path: &Path, limit: u64, lang: Lang) -> CliResult<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        CliError::bad(
            lang,
            format!("无法读取文件 {}:{e}", path.display()),
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    if !meta.is_file() {
        return Err(CliError::bad(
            lang,
            format!("{} 不是文件", path.display()),
            format!("{} is not a file", path.display()),
        ));
    }
    if meta.len() > limit {
        return Err(CliError::bad(
            lang,
            format!(
                "文件 {} 有 {} 字节,超过上限 {} 字节;请只导入列有事项的部分,或分批导入",
                path.display(),
                meta.len(),
                limit
            ),
            format!(
                "{} is {} bytes, over the {}-byte limit; import only the part that lists the items, or split it",
                path.display(),
                meta.len(),
                limit
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|e| {
            CliError::bad(
                lang,
                format!("无法读取文件 {}:{e}", path.display()),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
    Ok(bytes)
}

/// Reads the ledger sheet of `path`. In a workbook, the first sheet with a recognisable header
/// is taken (or the first non-empty sheet, so the header error names it).
pub fn read(path: &Path, wanted: Wanted, lang: Lang) -> CliResult<Sheet> {
    let bytes = read_limited(path, MAX_LEDGER_BYTES, lang)?;
    match kind_of(path, &bytes) {
        Kind::Workbook => read_workbook(path, bytes, lang),
        Kind::Csv => read_csv(path, &bytes, wanted, lang),
    }
}

fn cell_of(d: &calamine::Data) -> Cell {
    use calamine::Data;
    match d {
        Data::Empty => Cell::Empty,
        Data::String(s) => Cell::Text(s.clone()),
        Data::Int(i) => Cell::Number(*i as f64),
        Data::Float(f) => Cell::Number(*f),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(dt) => match excel_serial(dt.as_f64()) {
            Some(date) => Cell::Date(date),
            None => Cell::Number(dt.as_f64()),
        },
        Data::DateTimeIso(s) => s
            .get(..10)
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .map(Cell::Date)
            .unwrap_or_else(|| Cell::Text(s.clone())),
        Data::DurationIso(s) => Cell::Text(s.clone()),
        Data::Error(e) => Cell::Text(format!("#{e}")),
    }
}

fn read_workbook(path: &Path, bytes: Vec<u8>, lang: Lang) -> CliResult<Sheet> {
    let not_a_workbook = |e: &dyn std::fmt::Display| {
        CliError::bad(
            lang,
            format!(
                "{} 不是可读取的电子表格({e});请用 Excel/WPS 另存为 .xlsx 或 CSV 后重试",
                path.display()
            ),
            format!(
                "{} is not a readable spreadsheet ({e}); save it as .xlsx or CSV and retry",
                path.display()
            ),
        )
    };
    let mut wb =
        calamine::open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(|e| not_a_workbook(&e))?;
    let mut first_non_empty: Option<Sheet> = None;
    for name in wb.sheet_names() {
        let range = wb.worksheet_range(&name).map_err(|e| not_a_workbook(&e))?;
        if range.is_empty() {
            continue;
        }
        let (r0, _) = range.start().unwrap_or((0, 0));
        let rows: Vec<Vec<Cell>> = range
            .rows()
            .map(|r| r.iter().map(cell_of).collect())
            .collect();
        let sheet = Sheet {
            rows,
            first_row: r0 as usize + 1,
            name: name.clone(),
            encoding: None,
        };
        if find_header(&sheet.rows).is_some() {
            return Ok(sheet);
        }
        if first_non_empty.is_none() {
            first_non_empty = Some(sheet);
        }
    }
    first_non_empty.ok_or_else(|| {
        CliError::bad(
            lang,
            format!("{} 中的工作表都是空的;请检查是否选错了文件", path.display()),
            format!(
                "every sheet of {} is empty; check that this is the right file",
                path.display()
            ),
        )
    })
}

fn read_csv(path: &Path, bytes: &[u8], wanted: Wanted, lang: Lang) -> CliResult<Sheet> {
    let (text, encoding) = decode::decode(bytes, wanted).map_err(|e| {
        CliError::bad_input(format!(
            "{}: {}",
            path.display(),
            e.message(lang == Lang::Zh)
        ))
    })?;
    if text.contains('\0') {
        return Err(CliError::bad(
            lang,
            format!(
                "{} 含有二进制数据,不是 CSV 文本;请用 Excel/WPS 另存为 .xlsx 或 CSV 后重试",
                path.display()
            ),
            format!(
                "{} contains binary data and is not CSV text; save it as .xlsx or CSV and retry",
                path.display()
            ),
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| {
            CliError::bad(
                lang,
                format!("{} 不是有效的 CSV:{e}", path.display()),
                format!("{} is not valid CSV: {e}", path.display()),
            )
        })?;
        rows.push(
            rec.iter()
                .map(|s| {
                    if s.trim().is_empty() {
                        Cell::Empty
                    } else {
                        Cell::Text(s.to_string())
                    }
                })
                .collect(),
        );
    }
    if rows.iter().all(|r| r.iter().all(Cell::is_blank)) {
        return Err(CliError::bad(
            lang,
            format!("{} 是空的;请检查是否选错了文件", path.display()),
            format!(
                "{} is empty; check that this is the right file",
                path.display()
            ),
        ));
    }
    Ok(Sheet {
        rows,
        first_row: 1,
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        encoding: Some(encoding),
    })
}
