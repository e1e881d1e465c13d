//! The SVG plot of a run.

use super::*;

/// Draws rate against concurrency, one panel per scenario: Burrow and its baseline per mode.
pub(crate) fn plot(rows: &[Row], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let mut scenarios: Vec<&str> = Vec::new();
    for r in rows {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    let columns = 2;
    let panels = scenarios.len().max(1);
    let height = 320 * panels.div_ceil(columns) as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((panels.div_ceil(columns), columns));
    for (scenario, area) in scenarios.iter().zip(areas) {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.scenario == *scenario).collect();
        let max_c = mine.iter().map(|r| r.concurrency).max().unwrap_or(1).max(2) as f64;
        let max_rate = mine
            .iter()
            .map(|r| r.rate.max(r.baseline))
            .fold(1.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&area)
            .caption(*scenario, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d((1f64..max_c).log_scale(), 0f64..max_rate)?;
        chart
            .configure_mesh()
            .x_desc("concurrent callers")
            .y_desc("per second")
            .draw()?;
        for (mode, colour) in [("process", BLUE), ("machine", RED), ("replicated", GREEN)] {
            let series: Vec<&&Row> = mine.iter().filter(|r| r.mode == mode).collect();
            if series.is_empty() {
                continue;
            }
            let burrow: Vec<(f64, f64)> = series
                .iter()
                .map(|r| (r.concurrency.max(1) as f64, r.rate))
                .collect();
            let base: Vec<(f64, f64)> = series
                .iter()
                .map(|r| (r.concurrency.max(1) as f64, r.baseline))
                .collect();
            chart
                .draw_series(LineSeries::new(burrow.clone(), colour.stroke_width(2)))?
                .label(format!("burrow, {mode}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart.draw_series(burrow.iter().map(|p| Circle::new(*p, 3, colour.filled())))?;
            chart
                .draw_series(LineSeries::new(base, colour.mix(0.45).stroke_width(1)))?
                .label(format!("baseline, {mode}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.mix(0.45))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
