// Refresh the figures on the project list every two seconds from the public totals API.
"use strict";
const yuan = (fen) => "¥" + Math.floor(fen / 100).toLocaleString("zh-CN") + "." + String(fen % 100).padStart(2, "0");
async function refresh() {
  try {
    const res = await fetch("/api/projects");
    if (!res.ok) return;
    for (const p of await res.json()) {
      const card = document.querySelector(`[data-project="${CSS.escape(p.project_id)}"]`);
      if (!card) { location.reload(); return; }
      card.querySelector('[data-field="raised"]').textContent = yuan(p.raised_fen);
      card.querySelector('[data-field="count"]').textContent = p.donations_count;
      card.querySelector("progress").value = Math.min(p.raised_fen, p.goal_fen);
    }
  } catch (e) { /* offline for a moment: try again next tick */ }
}
setInterval(refresh, 2000);
