//! CSV (RFC 4180) for the admin's exports: a field is quoted when it holds a comma, a
//! quote, or a line break, with quotes doubled; records end in CRLF. Only writing: the
//! server never reads CSV.

/// Appends one record to `out`.
pub fn record<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let f = field.as_ref();
        if f.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        let mut out = String::new();
        record(&mut out, &["plain", "a,b", "say \"hi\"", "two\nlines", ""]);
        record(&mut out, &["x"]);
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\nx\r\n"
        );
    }
}
