// The closed-loop page's charts (templates/_audit_charts.html), drawn with the vendored Apache
// ECharts from the page's charts.json: money in and out over time, gifts per day by channel,
// and the flow from the channels through the project to where its money went.
//
// Amounts arrive as integer fen and are shown as yuan. Everything is drawn on canvas, the
// tooltips too (renderMode "richText"): an HTML tooltip would carry inline styles, which the
// Content-Security-Policy refuses. Each chart box gets data-rendered="1" once drawn.
(function () {
  "use strict";

  const section = document.querySelector("section.audit-charts[data-charts]");
  if (!section || typeof echarts === "undefined") return;
  const zh = section.dataset.lang !== "en";
  const GREEN = "#2f6b4f";
  const PALETTE = [GREEN, "#d08c2c", "#3f7fbf", "#a23b2a", "#7a5aa6", "#4e9d8f", "#b5648a", "#8a8f3c"];

  function yuan(fen) {
    const sign = fen < 0 ? "-" : "";
    const abs = Math.abs(fen);
    const whole = Math.floor(abs / 100).toLocaleString("en-US");
    return `${sign}¥${whole}.${String(abs % 100).padStart(2, "0")}`;
  }
  const label = (item) => (zh ? item.label_zh : item.label_en);
  const words = (zhText, enText) => (zh ? zhText : enText);

  function tooltip(extra) {
    return Object.assign({ renderMode: "richText", confine: true }, extra);
  }

  function draw(name, option, empty) {
    const box = section.querySelector(`.chart[data-chart="${name}"]`);
    if (!box) return;
    if (empty) {
      box.hidden = true;
      box.parentElement.querySelector(".chart-empty").hidden = false;
      box.dataset.rendered = "1";
      return;
    }
    const chart = echarts.init(box, null, { renderer: "canvas" });
    chart.on("finished", () => {
      box.dataset.rendered = "1";
    });
    chart.setOption(Object.assign({ color: PALETTE, animation: false, aria: { enabled: true } }, option));
    window.addEventListener("resize", () => chart.resize());
  }

  function cumulative(rows) {
    const line = (key, name, color) => ({
      type: "line",
      name,
      step: "end",
      showSymbol: rows.length < 40,
      color,
      data: rows.map((r) => [r.day, r[key]]),
    });
    draw(
      "cumulative",
      {
        grid: { left: 12, right: 16, top: 40, bottom: 28, containLabel: true },
        legend: { top: 0 },
        tooltip: tooltip({ trigger: "axis", valueFormatter: yuan }),
        xAxis: { type: "time", axisLabel: { formatter: "{MM}-{dd}", hideOverlap: true } },
        yAxis: { type: "value", axisLabel: { formatter: yuan } },
        series: [
          line("in_fen", words("累计收入", "Money in"), GREEN),
          line("out_fen", words("累计支出", "Money out"), "#a23b2a"),
          line("balance_fen", words("余额", "Balance"), "#3f7fbf"),
        ],
      },
      rows.length === 0,
    );
  }

  function gifts(doc) {
    doc.channels.forEach((c, i) => {
      channelColors[c.key] = PALETTE[(i + 1) % PALETTE.length];
    });
    const counts = doc.days.map((_, i) => doc.channels.reduce((n, c) => n + c.count[i], 0));
    draw(
      "gifts",
      {
        grid: { left: 12, right: 16, top: 40, bottom: 28, containLabel: true },
        legend: { top: 0, type: "scroll", itemGap: 16 },
        tooltip: tooltip({
          trigger: "axis",
          formatter: (items) => {
            const i = items[0].dataIndex;
            const lines = items.filter((it) => it.value).map((it) => `${it.seriesName}: ${yuan(it.value)}`);
            return [`${doc.days[i]} · ${counts[i]} ${words("笔", "gifts")}`, ...lines].join("\n");
          },
        }),
        xAxis: { type: "category", data: doc.days, axisLabel: { formatter: (day) => day.slice(5) } },
        yAxis: { type: "value", axisLabel: { formatter: yuan } },
        series: doc.channels.map((c) => ({
          type: "bar",
          name: label(c),
          stack: "gifts",
          color: channelColors[c.key],
          data: c.gross_fen,
        })),
      },
      doc.days.length === 0,
    );
  }

  // The flow's nodes beyond the channels: each kind of destination its colour.
  const DESTINATIONS = { fees: "#8a8f98", refunded: "#a23b2a", held: "#d08c2c", available: "#24557f", leftover: "#7a5aa6" };

  // A channel has the same colour in the flow as in the gifts per day.
  const channelColors = {};

  function node(n) {
    if (n.id === "project") return { name: n.id, itemStyle: { color: GREEN } };
    if (n.id.startsWith("in:")) return { name: n.id, itemStyle: { color: channelColors[n.id.slice(3)] } };
    // Destinations are the last column: their labels go on the left, inside the chart.
    const color = n.id.startsWith("payee:") ? "#4e9d8f" : DESTINATIONS[n.id];
    return { name: n.id, itemStyle: { color }, label: { position: "left" } };
  }

  function flow(doc) {
    const names = Object.fromEntries(doc.nodes.map((n) => [n.id, label(n)]));
    const total = doc.links.filter((l) => l.target === "project").reduce((sum, l) => sum + l.amount_fen, 0);
    draw(
      "flow",
      {
        tooltip: tooltip({
          trigger: "item",
          formatter: (item) =>
            item.dataType === "edge"
              ? `${names[item.data.source]} → ${names[item.data.target]}: ${yuan(item.data.value)}`
              : `${names[item.name]}: ${yuan(item.value)}`,
        }),
        series: [
          {
            type: "sankey",
            left: 8,
            right: 8,
            top: 8,
            bottom: 8,
            nodeGap: 14,
            emphasis: { focus: "adjacency" },
            lineStyle: { color: "gradient", opacity: 0.35 },
            // A sliver's label would sit on its neighbour's: its tooltip names it instead.
            label: {
              formatter: (item) => (item.value < total / 50 ? "" : `${names[item.name]}\n${yuan(item.value)}`),
              fontSize: 11,
            },
            data: doc.nodes.map(node),
            links: doc.links.map((l) => ({ source: l.source, target: l.target, value: l.amount_fen })),
          },
        ],
      },
      doc.links.length === 0,
    );
  }

  fetch(section.dataset.charts, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((answer) => {
      if (!answer.ok) throw new Error(`charts.json answered ${answer.status}`);
      return answer.json();
    })
    .then((doc) => {
      cumulative(doc.cumulative);
      gifts(doc.gifts);
      flow(doc.flow);
    })
    .catch((error) => {
      section.dataset.failed = String(error);
      console.error(error);
    });
})();
