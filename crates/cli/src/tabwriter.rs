//! Column alignment the way Go's `text/tabwriter` does it, so tables and `inspect` output
//! line up exactly like docker/buildx's.
//!
//! Cells are separated by `\t`; a line's last cell is not aligned. A column block is a run of
//! consecutive lines that have a cell in that column; its width is the widest cell plus
//! `padding`, but at least `min_width`.

/// `text` split into lines of cells, and each cell's column width (all but a line's last
/// cell), computed block by block as Go's tabwriter does.
fn column_widths(
    text: &str,
    min_width: usize,
    padding: usize,
) -> (Vec<Vec<&str>>, Vec<Vec<usize>>) {
    let lines: Vec<Vec<&str>> = text
        .split_terminator('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut widths: Vec<Vec<usize>> = lines
        .iter()
        .map(|cells| vec![0; cells.len().saturating_sub(1)])
        .collect();
    format_block(&lines, &mut widths, 0, 0, lines.len(), min_width, padding);
    (lines, widths)
}

/// Aligns `text` (lines separated by `\n`).
pub fn align(text: &str, min_width: usize, padding: usize) -> String {
    let (lines, widths) = column_widths(text, min_width, padding);
    let mut out = String::new();
    for (cells, w) in lines.iter().zip(&widths) {
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let len = cell.chars().count();
                out.extend(std::iter::repeat_n(' ', w[i].saturating_sub(len)));
            }
        }
        out.push('\n');
    }
    out
}

/// Aligns `text` like a Go `tabwriter` whose padding character is `\t` (buildx's
/// `tabwriter.NewWriter(w, min_width, tab_width, padding, '\t', 0)`): each column is
/// widened to a multiple of `tab_width` and filled with tabs, so `Total:` after
/// `Reclaimable:` becomes `Total:\t\t`.
pub fn align_tabs(text: &str, min_width: usize, tab_width: usize, padding: usize) -> String {
    let (lines, widths) = column_widths(text, min_width, padding);
    let tab_width = tab_width.max(1);
    let mut out = String::new();
    for (cells, w) in lines.iter().zip(&widths) {
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let cell_width = w[i].div_ceil(tab_width) * tab_width;
                let fill = cell_width.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n('\t', fill.div_ceil(tab_width)));
            }
        }
        out.push('\n');
    }
    out
}

fn format_block(
    lines: &[Vec<&str>],
    widths: &mut [Vec<usize>],
    col: usize,
    start: usize,
    end: usize,
    min_width: usize,
    padding: usize,
) {
    let mut i = start;
    while i < end {
        // Lines with a tab-terminated cell at `col` form a block.
        if lines[i].len() > col + 1 {
            let block_start = i;
            let mut width = min_width;
            while i < end && lines[i].len() > col + 1 {
                width = width.max(lines[i][col].chars().count() + padding);
                i += 1;
            }
            for w in &mut widths[block_start..i] {
                w[col] = width;
            }
            format_block(lines, widths, col + 1, block_start, i, min_width, padding);
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn aligns_like_go_tabwriter() {
        let s = align(
            "Name:\tanchor\nLast Activity:\tx\n\nNodes:\nName:\ta0\nLabels:\n\tk:\tv\n\tlonger.key:\tw\n",
            0,
            1,
        );
        assert_eq!(
            s,
            "Name:          anchor\nLast Activity: x\n\nNodes:\nName: a0\nLabels:\n k:          v\n longer.key: w\n"
        );
        let r = align_tabs("Reclaimable:\t4.096kB\nTotal:\t4.096kB\n", 1, 8, 1);
        assert_eq!(r, "Reclaimable:\t4.096kB\nTotal:\t\t4.096kB\n");
        let t = align("NAME/NODE\tSTATUS\tPLATFORMS\nx\t\t\n", 10, 3);
        assert_eq!(
            t,
            "NAME/NODE   STATUS    PLATFORMS\nx                     \n"
        );
    }
}
