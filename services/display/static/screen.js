// Venue screen: renders the gateway's event stream and recovers from every kind of outage
// on its own, because nobody is there to press reload.
//
// Rules this file keeps:
// * Amounts are integer fen and are formatted with integer arithmetic only.
// * Every text from the server goes in with textContent, never innerHTML.
// * A project's figures never go back to an older as_of_seq, whichever gateway sent them.
"use strict";

(function () {
  const body = document.body;
  const venueId = body.dataset.venue;
  const streamUrl = body.dataset.stream;
  const showMessages = body.dataset.showMessages === "true";

  const FEED_KEEP = 30; // gifts remembered; the list shows as many as fit
  const WATCHDOG_MS = 45000; // heartbeats come every 15 s; three missed means the stream is dead
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;

  const projectsEl = document.getElementById("projects");
  const giftsEl = document.getElementById("gifts");
  const feedEmptyEl = document.getElementById("feed-empty");
  const totalEl = document.getElementById("venue-total");
  const noteEl = document.getElementById("summary-note");
  const statusZh = document.getElementById("status-zh");
  const statusEn = document.getElementById("status-en");
  const banner = document.getElementById("banner");
  const bannerZh = document.getElementById("banner-zh");
  const bannerEn = document.getElementById("banner-en");
  const clockEl = document.getElementById("clock");
  const cardTemplate = document.getElementById("project-card");

  const projects = new Map(); // id -> latest project json
  const cards = new Map(); // id -> card element
  let order = []; // project ids in the venue's order
  let feed = []; // newest first
  const seenGifts = new Set();
  let venueTotal = null;
  let lastEventId = "";
  let lastDataAt = null; // server time (ms) of the last message with data
  let serverOffset = 0; // server clock minus ours
  let source = null;
  let watchdog = null;
  let retryTimer = null;
  let backoff = BACKOFF_MIN_MS;
  let live = true;
  let connected = false;
  const loadedAt = Date.now();

  // --- formatting (integer fen -> text) -------------------------------------------------

  function group(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function yuan(fen) {
    const negative = fen < 0;
    const abs = Math.abs(fen);
    const cents = abs % 100;
    const whole = (abs - cents) / 100; // exact: abs - cents is a multiple of 100
    return (negative ? "-¥" : "¥") + group(String(whole)) + "." + (cents < 10 ? "0" : "") + cents;
  }

  function percentOf(raised, goal) {
    if (goal <= 0) return null;
    const scaled = raised * 100;
    return (scaled - (scaled % goal)) / goal; // floor, in integers
  }

  function two(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function clockText(ms) {
    const d = new Date(ms);
    return two(d.getHours()) + ":" + two(d.getMinutes());
  }

  function ago(ms) {
    const seconds = Math.max(0, Math.floor((Date.now() + serverOffset - ms) / 1000));
    if (seconds < 60) return "刚刚";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " 分钟前";
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return hours + " 小时前";
    return Math.floor(hours / 24) + " 天前";
  }

  const STATUS_BADGES = {
    fundraising_closed: "筹款已结束",
    executing: "执行中",
    suspended: "暂停",
    closed: "已结项",
  };

  const CHANNELS = { qr: "扫码", web: "网上", venue: "现场", bank_transfer: "转账" };

  // --- projects ---------------------------------------------------------------------------

  function cardFor(id) {
    let card = cards.get(id);
    if (!card) {
      card = cardTemplate.content.firstElementChild.cloneNode(true);
      cards.set(id, card);
    }
    return card;
  }

  function renderCard(project, bump) {
    const card = cardFor(project.id);
    card.querySelector(".project-name").textContent = project.name;
    card.querySelector(".project-name-en").textContent = project.name_en || "";
    card.querySelector(".raised").textContent = yuan(project.raised_fen);
    card.querySelector(".goal").textContent = project.goal_fen > 0 ? "目标 " + yuan(project.goal_fen) : "不设目标";
    const pct = percentOf(project.raised_fen, project.goal_fen);
    const bar = card.querySelector(".bar");
    bar.hidden = pct === null;
    bar.setAttribute("aria-valuenow", String(pct === null ? 0 : Math.min(100, pct)));
    card.querySelector(".fill").style.width = (pct === null ? 0 : Math.min(100, pct)) + "%";
    const percentEl = card.querySelector(".percent");
    if (pct === null) {
      percentEl.replaceChildren();
    } else {
      const label = document.createElement("small");
      label.textContent = "已完成";
      percentEl.replaceChildren(label, String(pct) + "%");
    }
    card.querySelector(".count").textContent = group(String(project.donations_count)) + " 笔捐赠";
    card.querySelector(".offline").textContent =
      project.offline_fen > 0 ? "含线下 " + yuan(project.offline_fen) : "";
    const badge = card.querySelector(".project-badge");
    const label = STATUS_BADGES[project.status];
    badge.hidden = !label;
    badge.textContent = label || "";
    if (bump) flash(card, "bump", 1600);
  }

  function layoutCards() {
    const wanted = order.filter((id) => projects.has(id)).map((id) => cards.get(id));
    projectsEl.dataset.count = String(wanted.length || order.length);
    if (wanted.length !== projectsEl.children.length || wanted.some((c, i) => projectsEl.children[i] !== c)) {
      projectsEl.replaceChildren(...wanted);
    }
  }

  function applyProjects(list, bump) {
    for (const project of list) {
      const known = projects.get(project.id);
      if (known && project.as_of_seq < known.as_of_seq) continue; // never go back in time
      const changed = !known || known.raised_fen !== project.raised_fen;
      projects.set(project.id, project);
      if (!order.includes(project.id)) order.push(project.id);
      renderCard(project, bump && changed);
    }
    layoutCards();
  }

  function setTotal(fen, bump) {
    if (typeof fen !== "number") return;
    const changed = venueTotal !== null && venueTotal !== fen;
    venueTotal = fen;
    totalEl.textContent = yuan(fen);
    let count = 0;
    for (const p of projects.values()) count += p.donations_count;
    noteEl.replaceChildren(span("note-count", group(String(count)) + " 笔捐赠"),
                           span("note-projects", projects.size + " 个项目"));
    if (bump && changed) flash(totalEl, "bump", 1500);
  }

  // --- feed ---------------------------------------------------------------------------------

  function span(cls, text) {
    const el = document.createElement("span");
    el.className = cls;
    el.textContent = text;
    return el;
  }

  function giftElement(gift, fresh) {
    const li = document.createElement("li");
    li.className = "gift gift-" + gift.kind + (fresh ? " fresh" : "");
    li.dataset.id = gift.id;
    const line = document.createElement("div");
    line.className = "line";
    if (gift.kind === "charity_sale") {
      line.append(span("tag", "义卖"), span("who", gift.item || "义卖品"));
      line.append(span("amount", yuan(gift.amount_fen)));
    } else if (gift.kind === "cash_box") {
      line.append(span("tag", "线下"), span("who", "现金捐款箱"));
      line.append(span("amount", yuan(gift.amount_fen)));
    } else {
      line.append(span("who", gift.name || "爱心人士"), span("verb", "捐赠"));
      line.append(span("amount", yuan(gift.amount_fen)));
    }
    line.append(span("project-of", "· " + gift.project_name));
    const when = span("when", ago(gift.at));
    when.dataset.at = String(gift.at);
    if (gift.kind === "gift" && CHANNELS[gift.channel]) when.title = CHANNELS[gift.channel];
    line.append(when);
    li.append(line);
    if (showMessages && gift.message) li.append(span("message", gift.message));
    return li;
  }

  function renderFeed(freshIds) {
    const items = feed.map((gift) => giftElement(gift, freshIds.has(gift.id)));
    giftsEl.replaceChildren(...items);
    feedEmptyEl.hidden = feed.length > 0;
  }

  function addGifts(list, highlight) {
    const fresh = new Set();
    for (const gift of list) {
      if (seenGifts.has(gift.id)) continue; // a redelivered gift is shown once
      seenGifts.add(gift.id);
      feed.unshift(gift);
      if (highlight) fresh.add(gift.id);
    }
    if (feed.length > FEED_KEEP) {
      for (const dropped of feed.splice(FEED_KEEP)) seenGifts.delete(dropped.id);
    }
    return fresh;
  }

  function applyMessages(list) {
    for (const m of list || []) {
      const gift = feed.find((g) => g.id === m.id);
      if (gift) gift.message = m.message;
    }
  }

  // Names staff approved after the gift was shown, or masked when they flagged them.
  function applyNames(list) {
    for (const n of list || []) {
      const gift = feed.find((g) => g.id === n.id);
      if (gift) gift.name = n.name;
    }
  }

  // --- stream -------------------------------------------------------------------------------

  function noteServerTime(data) {
    if (typeof data.now === "number") serverOffset = data.now - Date.now();
  }

  function onSnapshot(event) {
    const data = JSON.parse(event.data);
    lastEventId = event.lastEventId;
    noteServerTime(data);
    lastDataAt = data.now;
    // A snapshot replaces what the screen knows, except that no project moves back to
    // an older total than one already shown (another gateway may be a moment behind).
    const before = new Set(seenGifts);
    const wasEmpty = projects.size === 0;
    order = data.projects.map((p) => p.id);
    for (const id of [...projects.keys()]) if (!order.includes(id)) projects.delete(id);
    applyProjects(data.projects, !wasEmpty);
    feed = [];
    seenGifts.clear();
    addGifts(data.feed, false);
    const fresh = new Set(wasEmpty ? [] : feed.filter((g) => !before.has(g.id)).map((g) => g.id));
    renderFeed(fresh);
    setTotal(recomputeTotal(data), !wasEmpty);
    markLive();
  }

  function onUpdate(event) {
    const data = JSON.parse(event.data);
    lastEventId = event.lastEventId;
    noteServerTime(data);
    lastDataAt = data.now;
    applyProjects(data.projects || [], true);
    const fresh = addGifts(data.feed || [], true);
    applyMessages(data.messages);
    applyNames(data.names);
    const changed = (data.messages && data.messages.length) || (data.names && data.names.length);
    if (fresh.size || changed) renderFeed(fresh);
    setTotal(recomputeTotal(data), true);
    markLive();
  }

  // The gateway's venue total is used unless this screen holds a newer figure for some
  // project (after switching gateways): then the sum of what is shown is the true total.
  function recomputeTotal(data) {
    let sum = 0;
    let ownNewer = false;
    for (const p of data.projects || []) {
      const shown = projects.get(p.id);
      if (shown && shown.as_of_seq > p.as_of_seq) ownNewer = true;
    }
    if (!ownNewer) return data.venue_total_fen;
    for (const p of projects.values()) if (p.currency === data.currency) sum += p.raised_fen;
    return sum;
  }

  function onHeartbeat(event) {
    const data = JSON.parse(event.data);
    noteServerTime(data);
    live = data.live !== false;
    // A live heartbeat confirms that the figures shown are still the current ones.
    if (live && typeof data.now === "number") lastDataAt = data.now;
    markLive();
  }

  function armWatchdog() {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      // Silence longer than three heartbeats: the connection is dead even if the
      // browser has not noticed (a cut cable or a sleeping Wi-Fi access point).
      reconnectLater();
    }, WATCHDOG_MS);
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    const url = lastEventId ? streamUrl + "?last_event_id=" + encodeURIComponent(lastEventId) : streamUrl;
    source = new EventSource(url);
    source.addEventListener("snapshot", guard(onSnapshot));
    source.addEventListener("update", guard(onUpdate));
    source.addEventListener("heartbeat", guard(onHeartbeat));
    source.addEventListener("reload", () => location.reload());
    source.onopen = () => armWatchdog();
    source.onerror = () => {
      connected = false;
      showState();
      if (source && source.readyState === EventSource.CLOSED) {
        reconnectLater(); // the browser gave up (e.g. a 503): retry ourselves, with backoff
      }
      // Otherwise the browser is already retrying, with Last-Event-ID.
    };
    armWatchdog();
  }

  function guard(handler) {
    return (event) => {
      armWatchdog();
      try {
        handler(event);
      } catch (err) {
        console.error("bad message", err); // one bad message must not stop the screen
      }
    };
  }

  function reconnectLater() {
    if (source) source.close();
    source = null;
    connected = false;
    showState();
    if (retryTimer) return;
    const jitter = 0.7 + Math.random() * 0.6; // screens that lost the same gateway spread out
    retryTimer = setTimeout(connect, Math.round(backoff * jitter));
    backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
  }

  function markLive() {
    connected = true;
    backoff = BACKOFF_MIN_MS;
    showState();
  }

  function showState() {
    let state;
    if (!connected) state = projects.size ? "reconnecting" : "connecting";
    else state = live ? "live" : "paused";
    body.classList.remove("state-live", "state-connecting", "state-reconnecting", "state-paused");
    body.classList.add("state-" + state);
    body.dataset.state = state;
    const asOf = lastDataAt ? clockText(lastDataAt) : null;
    const text = {
      live: ["实时更新", "Live", null],
      connecting: ["正在连接", "Connecting", null],
      reconnecting: [
        "正在重新连接",
        "Reconnecting",
        ["网络中断，正在重新连接" + (asOf ? " · 显示的是 " + asOf + " 的数据" : ""),
         "Connection lost, reconnecting" + (asOf ? " · figures as of " + asOf : "")],
      ],
      paused: [
        "数据更新暂停",
        "Updates paused",
        ["账本数据暂时无法更新" + (asOf ? " · 显示的是 " + asOf + " 的数据" : ""),
         "The ledger is not reachable" + (asOf ? " · figures as of " + asOf : "")],
      ],
    }[state];
    statusZh.textContent = text[0];
    statusEn.textContent = text[1];
    banner.hidden = !text[2];
    if (text[2]) {
      bannerZh.textContent = text[2][0];
      bannerEn.textContent = text[2][1];
    }
  }

  function flash(el, cls, ms) {
    el.classList.remove(cls);
    void el.offsetWidth; // restart the animation
    el.classList.add(cls);
    setTimeout(() => el.classList.remove(cls), ms);
  }

  function tick() {
    clockEl.textContent = clockText(Date.now() + serverOffset);
    for (const el of giftsEl.querySelectorAll(".when")) el.textContent = ago(Number(el.dataset.at));
    // A screen runs for weeks: reload once a day in the small hours, while connected,
    // so that browser memory never creeps and new page versions arrive.
    const hour = new Date().getHours();
    if (connected && hour === 3 && Date.now() - loadedAt > 20 * 3600 * 1000) location.reload();
  }

  window.addEventListener("online", () => {
    if (!connected) {
      backoff = BACKOFF_MIN_MS;
      reconnectLater();
    }
  });

  // Exposed for the browser test and for staff poking at a screen from devtools.
  window.venueScreen = {
    venueId,
    state: () => body.dataset.state,
    lastEventId: () => lastEventId,
    total: () => venueTotal,
  };

  showState();
  tick();
  setInterval(tick, 30000);
  connect();
})();
