#!/usr/bin/env bash
# Regenerate every published table from the cell files (never edit the tables by hand). From the repository root:
#   bash results/make_tables.sh
set -euo pipefail
published=()
for dir in results/modelnet10_*/; do
  dir=${dir%/}
  [ -d "$dir/cells" ] || continue
  published+=("$dir")
  ddbench table --results "$dir" --format markdown --published sadm2025 --output "$dir/table.md"
  ddbench table --results "$dir" --format markdown --published sadm2025 --std draws --output "$dir/table_draws.md"
  ddbench table --results "$dir" --format long --output "$dir/table_long.csv"
  echo "wrote $dir/table.md, $dir/table_draws.md and $dir/table_long.csv"
done
# the published experiments side by side, one table per like-with-like group (not results/runs/: local runs)
ddbench table --results "$(IFS=,; echo "${published[*]}")" --format markdown --published all --datasets modelnet10 --output results/table.md
echo "wrote results/table.md"
# our ModelNet10 cells beside SADM's Table 1 (ours, published, difference, within ±2 std, marks)
ddbench table --preset sadm2025.table1 --results "$(IFS=,; echo "${published[*]}")" --datasets modelnet10 --output results/table_sadm2025_table1.md
echo "wrote results/table_sadm2025_table1.md"
# the same table inside results/README.md and README.md, between their markers (regenerated here, never by hand)
python3 - <<'PY'
from pathlib import Path

table = Path("results/table_sadm2025_table1.md").read_text().strip()
begin, end = "<!-- begin: ddbench table --preset sadm2025.table1 -->", "<!-- end: ddbench table --preset sadm2025.table1 -->"
for readme in (Path("results/README.md"), Path("README.md")):
    text = readme.read_text()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        readme.write_text(f"{head}{begin}\n{table}\n{end}{rest.split(end, 1)[1]}")
        print(f"updated {readme}")
PY
