"""The report people look at: one self-contained HTML file with static SVG charts."""
