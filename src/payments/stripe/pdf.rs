//! A plain text document as a PDF: Stripe takes dispute evidence files as PDF, JPEG or PNG
//! only, so the shop's service documentation (lines of text) is laid out here on A4 pages in
//! Helvetica, one of the fonts every PDF reader has (nothing embedded, nothing compressed: the
//! text stays readable in the file itself). The output depends only on the input, so the same
//! document is the same upload.

/// A4 in points.
const WIDTH: u32 = 595;
const HEIGHT: u32 = 842;
const MARGIN: u32 = 50;
const SIZE: u32 = 10;
const LEADING: u32 = 13;
/// Characters per line: Helvetica at 10 pt averages about 5 pt a character, and the text
/// block is 495 pt wide; wide letters are rarer than this allows for.
const COLUMNS: usize = 90;

/// Lines that fit on a page below the title.
fn lines_per_page() -> usize {
    ((HEIGHT - 2 * MARGIN - 2 * LEADING) / LEADING) as usize
}

/// Splits `text` into lines of at most [`COLUMNS`] characters, at spaces where it can.
fn wrap(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in text.lines() {
        let indent: String = raw.chars().take_while(|c| *c == ' ').collect();
        let mut line = String::new();
        for word in raw.split(' ').filter(|w| !w.is_empty()) {
            let mut word = word.to_owned();
            loop {
                let len = line.chars().count();
                let room = if len == 0 {
                    COLUMNS.saturating_sub(indent.len())
                } else {
                    COLUMNS.saturating_sub(len + 1)
                };
                if word.chars().count() <= room {
                    if len > 0 {
                        line.push(' ');
                    } else {
                        line.push_str(&indent);
                    }
                    line.push_str(&word);
                    break;
                }
                if len > indent.len() {
                    out.push(std::mem::take(&mut line));
                    continue;
                }
                // A word longer than a line (a URL, an id): cut it.
                let cut = COLUMNS.saturating_sub(indent.len()).max(1);
                let head: String = word.chars().take(cut).collect();
                out.push(format!("{indent}{head}"));
                word = word.chars().skip(cut).collect();
                if word.is_empty() {
                    break;
                }
            }
        }
        out.push(line);
    }
    out
}

/// A PDF string literal in WinAnsiEncoding: parentheses and backslashes escaped, anything
/// beyond ASCII as an octal escape (so the file stays ASCII), characters the encoding lacks
/// as `?`.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('(');
    for c in text.chars() {
        let byte = match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '‚' => 0x82,
            '„' => 0x84,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '™' => 0x99,
            '→' => {
                out.push_str("->");
                continue;
            }
            _ => b'?',
        };
        match byte {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\{byte:03o}")),
        }
    }
    out.push(')');
    out
}

/// The PDF of `title` (bold, on every page) followed by `body`'s lines.
pub fn text_document(title: &str, body: &str) -> Vec<u8> {
    let lines = wrap(body);
    let pages: Vec<&[String]> = if lines.is_empty() {
        vec![&[]]
    } else {
        lines.chunks(lines_per_page()).collect()
    };
    let count = pages.len();
    // Objects: 1 catalog, 2 page tree, 3 and 4 fonts, 5 info, then a page and its content
    // stream per page.
    let mut objects: Vec<Vec<u8>> = Vec::with_capacity(5 + 2 * count);
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    let kids: Vec<String> = (0..count).map(|i| format!("{} 0 R", 6 + 2 * i)).collect();
    objects.push(
        format!(
            "<< /Type /Pages /Kids [{}] /Count {count} >>",
            kids.join(" ")
        )
        .into_bytes(),
    );
    for font in ["Helvetica", "Helvetica-Bold"] {
        objects.push(
            format!(
                "<< /Type /Font /Subtype /Type1 /BaseFont /{font} /Encoding /WinAnsiEncoding >>"
            )
            .into_bytes(),
        );
    }
    objects.push(format!("<< /Title {} /Producer (coinfront) >>", literal(title)).into_bytes());
    for (i, page) in pages.iter().enumerate() {
        let mut content = format!(
            "BT\n/F2 12 Tf\n{MARGIN} {} Td\n{} Tj\n/F1 {SIZE} Tf\n{LEADING} TL\nT*\n",
            HEIGHT - MARGIN,
            literal(&if count > 1 {
                format!("{title} (page {} of {count})", i + 1)
            } else {
                title.to_owned()
            })
        );
        for line in page.iter() {
            content.push_str("T*\n");
            if !line.is_empty() {
                content.push_str(&literal(line));
                content.push_str(" Tj\n");
            }
        }
        content.push_str("ET\n");
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {WIDTH} {HEIGHT}] /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R >>",
                7 + 2 * i
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(content.as_bytes());
        stream.extend_from_slice(b"endstream");
        objects.push(stream);
    }
    // The binary comment marks the file as binary for transfer programs, as the spec advises.
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(object);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(pdf: &[u8]) -> String {
        String::from_utf8_lossy(pdf).into_owned()
    }

    #[test]
    fn every_cross_reference_points_at_its_object() {
        let body = (0..150)
            .map(|i| format!("Line {i}: something happened"))
            .collect::<Vec<_>>()
            .join("\n");
        let pdf = text_document("Service documentation", &body);
        let s = text(&pdf);
        assert!(s.starts_with("%PDF-1.4\n"));
        assert!(s.ends_with("%%EOF\n"));
        let start: usize = s
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(pdf[start..].starts_with(b"xref\n"));
        let tail = std::str::from_utf8(&pdf[start..]).unwrap();
        let entries: Vec<&str> = tail
            .lines()
            .skip(3)
            .take_while(|l| l.ends_with(" n "))
            .collect();
        assert_eq!(entries.len(), 5 + 2 * 3, "150 lines make three pages");
        for (i, e) in entries.iter().enumerate() {
            let at: usize = e[..10].parse().unwrap();
            assert!(
                pdf[at..].starts_with(format!("{} 0 obj\n", i + 1).as_bytes()),
                "{e}"
            );
        }
        assert!(s.contains("/Count 3"));
        assert!(s.contains("(Service documentation \\(page 3 of 3\\)) Tj"));
        // Each stream's length is its content's.
        for part in s.split("<< /Length ").skip(1) {
            let (n, rest) = part.split_once(" >>\nstream\n").unwrap();
            let n: usize = n.parse().unwrap();
            assert!(rest[n..].starts_with("endstream"));
        }
    }

    #[test]
    fn text_is_escaped_and_kept_ascii() {
        assert_eq!(literal("a (b) \\ c"), "(a \\(b\\) \\\\ c)");
        assert_eq!(literal("Zoë — 5 €"), "(Zo\\353 \\227 5 \\200)");
        assert_eq!(literal("漢 → x"), "(? -> x)");
        let pdf = text_document("T", "Zoë (@zoe)");
        assert_eq!(&pdf[9..15], b"%\xe2\xe3\xcf\xd3\n");
        assert!(pdf[15..].is_ascii());
        assert!(text(&pdf).contains("(Zo\\353 \\(@zoe\\)) Tj"));
    }

    #[test]
    fn long_lines_wrap_at_spaces_and_long_words_are_cut() {
        let long = "word ".repeat(40);
        let lines = wrap(&long);
        assert!(lines.len() >= 2);
        assert!(lines.iter().all(|l| l.chars().count() <= COLUMNS));
        assert_eq!(lines.join(" ").split_whitespace().count(), 40);
        let id = "x".repeat(200);
        let lines = wrap(&format!("  id {id}"));
        assert!(
            lines.iter().all(|l| l.chars().count() <= COLUMNS),
            "{lines:?}"
        );
        assert_eq!(lines.concat().matches('x').count(), 200);
        assert_eq!(wrap("a\n\nb"), ["a", "", "b"]);
    }

    #[test]
    fn the_same_text_is_the_same_file() {
        assert_eq!(text_document("T", "x"), text_document("T", "x"));
        assert_ne!(text_document("T", "x"), text_document("T", "y"));
    }
}
