"""The meter's sparkline: a caption row with its scale, then bars scaled to the largest value, eight levels a
row, buckets when data is wider."""
from __future__ import annotations

from textual.app import App, ComposeResult

from taskclock.tui.widgets.meter import Spark


class OneSpark(App):
    CSS = "Spark { width: 16; height: 3; }"

    def compose(self) -> ComposeResult:
        yield Spark("tok/s")


async def rows_for(values: list[float]) -> list[str]:
    app = OneSpark()
    async with app.run_test(size=(20, 5)) as pilot:
        spark = app.query_one(Spark)
        spark.show(values)
        await pilot.pause()
        return [spark.render_line(y).text.rstrip() for y in range(3)]


async def test_bars_scale_to_the_largest_value_across_two_rows_under_the_scale():
    # height 2 = 16 eighths: 0 -> empty, 4 -> a quarter, 8 -> the full lower row, 16 -> both rows full
    assert await rows_for([0, 4, 8, 16]) == ["tok/s · max 16.0", "   █", " ▄██"]


async def test_more_points_than_columns_keep_each_buckets_peak():
    # 32 points into 16 columns: the larger of each pair; 4 is the top, 2 half of it, 1 a quarter
    values = [1, 0] * 4 + [0, 2] * 4 + [0, 0] * 4 + [4, 3] * 4
    assert await rows_for(values) == ["tok/s · max 4.0", "            ████", "▄▄▄▄████    ████"]


async def test_no_data_is_blank_not_a_baseline():
    assert await rows_for([]) == ["tok/s", "", ""]
