"""The meter's sparkline: bars scaled to the largest value, eight levels a row, buckets when data is wider."""
from __future__ import annotations

from textual.app import App, ComposeResult

from taskclock.tui.widgets.meter import Spark


class OneSpark(App):
    CSS = "Spark { width: 4; height: 2; }"

    def compose(self) -> ComposeResult:
        yield Spark()


async def rows_for(values: list[float]) -> list[str]:
    app = OneSpark()
    async with app.run_test(size=(20, 5)) as pilot:
        spark = app.query_one(Spark)
        spark.show(values)
        await pilot.pause()
        return [spark.render_line(y).text for y in range(2)]


async def test_bars_scale_to_the_largest_value_across_two_rows():
    # height 2 = 16 eighths: 0 -> empty, 4 -> a quarter, 8 -> the full lower row, 16 -> both rows full
    assert await rows_for([0, 4, 8, 16]) == ["   █", " ▄██"]


async def test_more_points_than_columns_keep_each_buckets_peak():
    # 8 points into 4 columns: the larger of each pair, [1, 2, 0, 4], so a quarter, a half, none, full
    assert await rows_for([1, 0, 0, 2, 0, 0, 4, 3]) == ["   █", "▄█ █"]


async def test_no_data_is_blank_not_a_baseline():
    assert await rows_for([]) == ["    ", "    "]
