//! `parley bench hostile`: documents made to hurt a parser, each parsed as
//! the worker parses it (in a sandboxed child process), with what it cost:
//! the outcome and its code, the wall time, and this process's peak
//! resident memory before and after (it must not move: the child pays).

use std::io::Write;
use std::time::Instant;

use parley_worker::ingest::parse::{self, Kind, ParseLimits};

use crate::config::Settings;

/// Peak resident memory of this process so far (`VmHWM`), in MiB.
pub fn peak_rss_mib() -> f64 {
    proc_memory_mib(None, "VmHWM").unwrap_or(0.0)
}

/// A memory figure (`VmRSS`, `VmHWM`) of a process, or of this one, from
/// `/proc/<pid>/status`, in MiB.
pub fn proc_memory_mib(pid: Option<u32>, field: &str) -> Option<f64> {
    let path = pid.map_or_else(|| "/proc/self/status".to_owned(), |p| format!("/proc/{p}/status"));
    let status = std::fs::read_to_string(path).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A PDF whose only page's content is `inner` bytes of spaces compressed
/// twice (`/Filter [/FlateDecode /FlateDecode]`): a few kilobytes that
/// inflate to `inner` bytes.
fn flate_bomb_pdf(inner: usize) -> anyhow::Result<Vec<u8>> {
    use flate2::Compression;
    use flate2::write::ZlibEncoder;
    let mut once = ZlibEncoder::new(Vec::new(), Compression::best());
    let block = vec![b' '; 1 << 20];
    let mut left = inner;
    while left > 0 {
        let n = left.min(block.len());
        once.write_all(&block[..n])?;
        left -= n;
    }
    let once = once.finish()?;
    let mut twice = ZlibEncoder::new(Vec::new(), Compression::best());
    twice.write_all(&once)?;
    let content = twice.finish()?;
    let mut pdf = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    let mut object = |pdf: &mut Vec<u8>, body: &[u8]| {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", offsets.len()).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    };
    object(&mut pdf, b"<< /Type /Catalog /Pages 2 0 R >>");
    object(&mut pdf, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    object(
        &mut pdf,
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
    );
    let mut stream = format!(
        "<< /Length {} /Filter [/FlateDecode /FlateDecode] >>\nstream\n",
        content.len()
    )
    .into_bytes();
    stream.extend_from_slice(&content);
    stream.extend_from_slice(b"\nendstream");
    object(&mut pdf, &stream);
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes());
    for o in &offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    Ok(pdf)
}

/// A Word document of `n` tables nested inside each other around one paragraph.
fn nested_tables_docx(n: usize) -> anyhow::Result<Vec<u8>> {
    let body = format!(
        "{}<w:p><w:r><w:t>Deep inside.</w:t></w:r></w:p>{}",
        "<w:tbl><w:tr><w:tc>".repeat(n),
        "</w:tc></w:tr></w:tbl>".repeat(n)
    );
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    zip_docx(&[("word/document.xml", xml.as_bytes())])
}

fn zip_docx(parts: &[(&str, &[u8])]) -> anyhow::Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in parts {
        zip.start_file(*name, options)?;
        zip.write_all(bytes)?;
    }
    zip.finish()?;
    Ok(out.into_inner())
}

/// A Word package whose `word/document.xml` is `size` zero bytes, written
/// a megabyte at a time.
fn zip_bomb(size: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("word/document.xml", options)?;
    let block = vec![0u8; 1 << 20];
    for _ in 0..size / block.len() {
        zip.write_all(&block)?;
    }
    zip.finish()?;
    Ok(out.into_inner())
}

pub async fn hostile(settings: &Settings) -> anyhow::Result<()> {
    let Some(sandbox) = settings.ingest().parse_sandbox else {
        anyhow::bail!("PARLEY_PARSE_SANDBOX is off: nothing to measure");
    };
    println!(
        "parley bench hostile: each document parsed in a child process ({} MB address space, {} s CPU, {} s wall)",
        sandbox.memory_bytes >> 20,
        sandbox.cpu_seconds,
        settings.parse_timeout_secs
    );
    let limits = ParseLimits {
        timeout: std::time::Duration::from_secs(settings.parse_timeout_secs),
        sandbox: Some(sandbox),
    };
    let cases: Vec<(&str, Kind, Vec<u8>)> = vec![
        (
            "PDF, 1.5 GB of spaces flate-encoded twice",
            Kind::Pdf,
            flate_bomb_pdf(1536 << 20)?,
        ),
        (
            "HTML, 200,000 nested <div>s",
            Kind::Html,
            format!(
                "<html><body>{}<p>Deep inside.</p>{}</body></html>",
                "<div>".repeat(200_000),
                "</div>".repeat(200_000)
            )
            .into_bytes(),
        ),
        ("DOCX, 5,000 nested tables", Kind::Docx, nested_tables_docx(5000)?),
        (
            "DOCX, a part of 1 GB of zeros (zip bomb)",
            Kind::Docx,
            zip_bomb(1 << 30)?,
        ),
    ];
    println!(
        "{:<44} {:>9} {:>8}  {:<18} {:>14}",
        "input", "bytes", "seconds", "outcome", "peak RSS (MiB)"
    );
    for (name, kind, bytes) in cases {
        let size = bytes.len();
        let before = peak_rss_mib();
        let started = Instant::now();
        let outcome = match parse::parse(kind, bytes, None, &limits).await {
            Ok(doc) => format!("read, {} blocks", doc.blocks.len()),
            Err(e) => e.code.to_owned(),
        };
        println!(
            "{name:<44} {size:>9} {:>8.2}  {outcome:<18} {before:>6.0} → {:<6.0}",
            started.elapsed().as_secs_f64(),
            peak_rss_mib()
        );
    }
    Ok(())
}
