//! Turning the novels' lines into clean paragraphs.

/// Joins a novel's lines into paragraphs (blank lines separate them), drops the front matter
/// before the first "CHAPTER" line, headings (no lowercase letter: "CHAPTER I", "VOLUME II",
/// "THE END") and the italics underscores.
pub fn paragraphs(lines: &[String]) -> Vec<String> {
    let start = lines.iter().position(|l| l.trim_start().starts_with("CHAPTER")).unwrap_or(0);
    let lines = &lines[start..];
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut flush = |current: &mut Vec<&str>| {
        if !current.is_empty() {
            let text = current.join(" ").replace('_', "");
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if text.chars().any(|c| c.is_lowercase()) {
                out.push(text);
            }
            current.clear();
        }
    };
    for line in lines {
        let line = line.trim();
        if line.is_empty() {
            flush(&mut current);
        } else {
            current.push(line);
        }
    }
    flush(&mut current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn joins_lines_and_drops_headings_and_italics() {
        let novel = lines(
            "EMMA\n\nBy Jane Austen\n\nVOLUME I\n\nCHAPTER I\n\nEmma Woodhouse, handsome,\nclever, and _rich_.\n\n\nShe was  the youngest.\n",
        );
        assert_eq!(paragraphs(&novel), vec!["Emma Woodhouse, handsome, clever, and rich.", "She was the youngest."]);
    }
}
