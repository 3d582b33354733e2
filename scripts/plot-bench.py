"""Plots bench-out/results.json: element fps per size and accelerator against the peer."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results = json.load(open(sys.argv[1]))
labels, values, colours = [], [], []
for p in results["pipelines"]:
    size = f'{p["width"]}x{p["height"]}'
    if p.get("inference_width") == p["width"] and p.get("inference_height") == p["height"]:
        size += " native"
    labels.append(f'element {p["accelerator"]}\n{size}')
    values.append(p["fps"])
    colours.append("#3b7dd8" if p["accelerator"] == "cpu" else "#2aa876")
if results.get("peer_fps"):
    labels.append("Python peer\n640x480")
    values.append(results["peer_fps"])
    colours.append("#999999")
fig, ax = plt.subplots(figsize=(max(7, 1.05 * len(labels)), 3.6), dpi=110)
bars = ax.bar(labels, values, color=colours)
ax.bar_label(bars, fmt="%.1f")
ax.set_ylabel("frames per second")
machine = results.get("machine", {})
ax.set_title(f'stylize, {machine.get("cores", "?")} cores {machine.get("arch", "")}, {results.get("date", "")[:10]}')
fig.tight_layout()
fig.savefig(sys.argv[2])
print(f"wrote {sys.argv[2]}")
