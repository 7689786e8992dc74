#!/usr/bin/env python3
"""Writes the example data set of the README: potato late blight on field weather stations.

Each row is one station-day: the mean air temperature (°C), the mean relative humidity (%),
the hours the leaves stayed wet, and whether blight lesions were found within the week
(`blight`: yes/no). Blight spreads in mild, humid, wet weather: the risk peaks between
roughly 15 and 25 °C and falls off on both sides, which no straight line in the features can
describe (logistic regression underfits; one hidden layer fits). The outcome is drawn at
random from that risk, so no model gets every row right.

The data are synthetic, made to look like field records, and fully determined by the seeds
below: `python3 examples/data/make_blight.py` rewrites the same files byte for byte.
"""

import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent


def risk(temp, hum, wet):
    """Probability of blight: a temperature band times humidity and leaf wetness."""
    band = 1.0 - ((temp - 19.0) / 7.0) ** 2
    z = 4.0 * band + 0.15 * (hum - 82.0) + 0.45 * (wet - 7.0) - 1.2
    return 1.0 / (1.0 + math.exp(-z))


def station_day(rng):
    temp = rng.uniform(4.0, 34.0)
    hum = min(100.0, max(35.0, rng.gauss(78.0, 11.0)))
    wet = min(24.0, max(0.0, 0.3 * (hum - 60.0) + rng.gauss(0.0, 2.5)))
    return round(temp, 1), round(hum, 1), round(wet, 1)


def write(name, rows, seed):
    rng = random.Random(seed)
    lines = ["temperature_c,humidity_pct,leaf_wetness_h,blight"]
    for _ in range(rows):
        temp, hum, wet = station_day(rng)
        sick = rng.random() < risk(temp, hum, wet)
        lines.append(f"{temp},{hum},{wet},{'yes' if sick else 'no'}")
    (HERE / name).write_text("\n".join(lines) + "\n")


# New station-days to predict: no label, the columns in another order, an extra column.
NEW = [
    ("S01", 11.0, 94.0, 18.5),  # mild, humid, long wet spell
    ("S02", 10.0, 90.0, 31.0),  # as wet, but hot
    ("S03", 2.0, 65.0, 20.1),   # mild but dry
    ("S04", 13.0, 96.0, 9.0),   # cold and very wet
    ("S05", 8.5, 88.0, 23.4),
    ("S06", 9.8, 91.5, 16.2),
]

write("blight_train.csv", 1200, seed=1)
write("blight_val.csv", 300, seed=2)
(HERE / "blight_new.csv").write_text(
    "station,leaf_wetness_h,humidity_pct,temperature_c\n"
    + "".join(f"{s},{w},{h},{t}\n" for s, w, h, t in NEW)
)
