"""Run history: the queries behind the history page, its chart and the sources' health."""
