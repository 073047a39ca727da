"""The leaderboard and the report: rows, the BEIR average, published figures, significance, findings, pages and plots."""
