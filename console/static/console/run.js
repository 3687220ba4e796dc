// The run page: the graph laid out by dagre (vendored), coloured live from the run's
// WebSocket events; a timeline and per-node details from the run's record (the API); the
// run's controls and its re-run with a preview first. No framework, no external asset.
(() => {
  const runId = window.RUN.id;
  const own = window.RUN.own;
  const picture = JSON.parse(document.getElementById("picture").textContent);
  const csrf = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
  const terminal = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
  const $ = (id) => document.getElementById(id);
  let runStatus = "", runStarted = null, runEnded = null, record = null;

  // --- the picture (picture.js) ----------------------------------------------------------
  const {boxes, fit} = window.drawGraph($("graph"), picture, (id) => select(id));
  $("fit").onclick = fit;
  for (const box of Object.values(boxes)) box.querySelector(".state").textContent = " · not started";

  // --- live status ------------------------------------------------------------------------
  const counts = {};
  const outputsShown = new Set();
  function showNode(ne) {
    const box = boxes[ne.node_id];
    if (!box) return;
    box.dataset.status = ne.status;
    if (own && !$("rerun").hidden && !touched && ["FAILED", "CANCELLED"].includes(ne.status)) {
      choose(ne.node_id, true);
    }
    const seen = (counts[ne.node_id] = counts[ne.node_id] || new Set());
    const id = ne.node_execution_id || ne.id;
    seen.add(id);
    box.querySelector(".state").textContent =
      ` · ${ne.status.toLowerCase()}${seen.size > 1 ? ` ×${seen.size}` : ""}`;
    const outputs = ne.outputs || ne.output_data;
    if (outputs && ne.status !== "RUNNING" && !outputsShown.has(id)) {
      outputsShown.add(id);
      for (const [pin, values] of Object.entries(outputs)) {
        const li = document.createElement("li");
        const label = document.createElement("strong");
        label.textContent = `${ne.node_id}.${pin}:`;
        li.append(label, valueBlock(values, pin === "error"));
        $("outputs").appendChild(li);
      }
    }
    scheduleRecord();
  }
  // A value readably: text as text, anything else as indented JSON.
  function valueBlock(value, isError) {
    const pre = document.createElement("pre");
    pre.className = "value" + (isError ? " error" : "");
    pre.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    return pre;
  }

  const texts = {};
  function showText(ne, offset, text) {
    const id = ne.node_execution_id || ne.id;
    let panel = texts[id];
    if (!panel) {
      panel = texts[id] = {text: "", box: document.createElement("pre")};
      panel.box.className = "stream";
      const title = document.createElement("h3");
      title.textContent = `${ne.node_id} says`;
      $("streams").append(title, panel.box);
    }
    if (offset + text.length > panel.text.length) {
      panel.text = panel.text.slice(0, offset) + text;
      panel.box.textContent = panel.text;
    }
  }

  function showRun(run) {
    runStatus = run.status;
    $("status").textContent = run.status;
    $("status").className = `badge ${run.status}`;
    if (run.stats) $("cost").textContent = run.stats.cost;
    runStarted = run.started_at ? Date.parse(run.started_at) : null;
    runEnded = run.ended_at ? Date.parse(run.ended_at) : null;
    if (run.stats && (runEnded || !runStarted)) $("duration").textContent = run.stats.duration;
    if (own) {
      $("cancel").disabled = terminal.has(run.status);
      $("pause").disabled = !["RUNNING", "REVIEW"].includes(run.status);
      $("resume").disabled = !["PAUSED", "FAILED"].includes(run.status);
    }
    if (terminal.has(run.status)) {
      for (const box of Object.values(boxes)) {
        if (!box.dataset.status) {
          box.dataset.status = "NOT_REACHED";
          box.querySelector(".state").textContent = " · not reached";
        }
      }
      if (own && $("rerun").hidden) openRerun();
    }
    scheduleRecord();
  }
  setInterval(() => {  // the duration ticks while the run goes on
    if (runStarted && !runEnded && !terminal.has(runStatus)) {
      $("duration").textContent = ((Date.now() - runStarted) / 1000).toFixed(1);
    }
  }, 500);

  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/executions/`);
  ws.onopen = () => {
    $("connection").textContent = "live";
    ws.send(JSON.stringify({action: "subscribe", execution_id: runId}));
  };
  ws.onclose = () => { $("connection").textContent = "disconnected"; };
  ws.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "snapshot") {
      event.node_executions.forEach((ne) => {
        showNode(ne);
        if (ne.streamed) showText(ne, 0, ne.streamed);
      });
      showRun(event);
    } else if (event.type === "node" && event.execution_id === runId && event.delta) {
      showText(event, event.offset || 0, event.delta);
    } else if (event.type === "node" && event.execution_id === runId) {
      showNode(event);
    } else if (event.type === "execution" && event.id === runId) {
      showRun(event);
    } else if (event.type === "log" && event.execution_id === runId) {
      showLog(event);
    }
  };

  // --- the record: timeline and details ---------------------------------------------------
  let recordTimer = null;
  function scheduleRecord() {
    if (recordTimer) return;
    recordTimer = setTimeout(async () => {
      recordTimer = null;
      const response = await fetch(`/api/executions/${runId}/`, {credentials: "same-origin"});
      if (!response.ok) return;
      record = await response.json();
      drawTimeline();
      if (selected) showDetail(selected);
    }, 400);
  }
  function drawTimeline() {
    const rows = record.node_executions.filter((n) => n.queued_at || n.started_at);
    const t = (s) => (s ? Date.parse(s) : null);
    const start = Math.min(...rows.map((n) => t(n.queued_at) || t(n.started_at)));
    const end = Math.max(...rows.map((n) => t(n.ended_at) || Date.now()), start + 1);
    const pct = (x) => `${((x - start) / (end - start)) * 100}%`;
    const out = rows.map((n) => {
      const row = document.createElement("div");
      row.className = "row";
      row.dataset.node = n.node_id;
      const label = document.createElement("span");
      label.textContent = `${n.node_id}${n.reused_from ? " (reused)" : ""}`;
      const track = document.createElement("div");
      track.className = "track";
      const queued = t(n.queued_at), started = t(n.started_at), ended = t(n.ended_at) || Date.now();
      if (queued && started) {
        const wait = document.createElement("span");
        wait.className = "wait";
        wait.style.left = pct(queued);
        wait.style.width = `calc(${pct(started)} - ${pct(queued)})`;
        wait.title = `waited ${((started - queued) / 1000).toFixed(3)} s`;
        track.appendChild(wait);
      }
      if (started) {
        const ran = document.createElement("span");
        ran.className = `ran ${n.status}`;
        ran.style.left = pct(started);
        ran.style.width = `max(2px, calc(${pct(ended)} - ${pct(started)}))`;
        ran.title = `${n.status.toLowerCase()}, ran ${((ended - started) / 1000).toFixed(3)} s`;
        track.appendChild(ran);
      }
      row.append(label, track);
      return row;
    });
    $("timeline").replaceChildren(...out);
  }
  let selected = null;
  function select(nodeId) {
    Object.values(boxes).forEach((b) => b.classList.remove("selected"));
    boxes[nodeId].classList.add("selected");
    selected = nodeId;
    showDetail(nodeId);
  }
  function showDetail(nodeId) {
    const panel = $("detail");
    const title = document.createElement("h2");
    title.textContent = nodeId;
    const block = picture.nodes.find((n) => n.id === nodeId).block;
    const sub = document.createElement("p");
    sub.className = "muted";
    sub.textContent = block;
    const parts = [title, sub];
    const runs = record ? record.node_executions.filter((n) => n.node_id === nodeId) : [];
    if (!runs.length) {
      const none = document.createElement("p");
      none.textContent = terminal.has(runStatus) ? "Not reached in this run." : "Not started yet.";
      parts.push(none);
    }
    runs.forEach((n, i) => {
      const head = document.createElement("h3");
      head.innerHTML = `<span class="badge ${n.status}"></span>`;
      head.firstChild.textContent = n.status.toLowerCase();
      head.append(` execution ${i + 1}`);
      const facts = document.createElement("dl");
      for (const [k, v] of [["attempts", n.attempts], ["worker", n.worker || "-"], ["cost", n.cost],
                            ["reused from", n.reused_from || "-"]]) {
        const dt = document.createElement("dt"); dt.textContent = k;
        const dd = document.createElement("dd"); dd.textContent = v;
        facts.append(dt, dd);
      }
      parts.push(head, facts);
      if (n.error) { parts.push(label("error"), valueBlock(n.error, true)); }
      parts.push(label("inputs"), valueBlock(n.input_data, false));
      parts.push(label("outputs"), valueBlock(n.output_data, false));
      const logBox = document.createElement("pre");
      logBox.className = "value log";
      logBox.dataset.nodeExecution = n.id;
      logBox.textContent = "…";
      parts.push(label("log"), logBox);
      loadLog(n.id, logBox);
    });
    panel.replaceChildren(...parts);
  }
  // A node execution's log lines (GET .../nodes/{id}/logs/), then live `log` events.
  const logLine = (l) => `${new Date(l.at).toLocaleTimeString()} ${l.level.padEnd(7)} ${l.message}`;
  async function loadLog(nodeExecutionId, box) {
    const response = await fetch(`/api/executions/${runId}/nodes/${nodeExecutionId}/logs/?limit=500`,
                                 {credentials: "same-origin"});
    if (!response.ok) { box.textContent = "(no log)"; return; }
    const lines = (await response.json()).results;
    box.textContent = lines.length ? lines.map(logLine).join("\n") : "(nothing logged)";
  }
  function showLog(event) {
    const box = document.querySelector(`pre.log[data-node-execution="${event.node_execution_id}"]`);
    if (!box) return;
    const text = box.textContent === "(nothing logged)" ? "" : box.textContent;
    box.textContent = (text ? `${text}\n` : "") + logLine(event);
  }
  function label(text) { const s = document.createElement("strong"); s.textContent = text; return s; }

  // --- controls ---------------------------------------------------------------------------
  async function control(action) {
    const response = await fetch(`/api/executions/${runId}/${action}/`, {
      method: "POST", credentials: "same-origin", headers: {"X-CSRFToken": csrf},
    });
    const body = await response.json().catch(() => ({}));
    $("control-message").textContent = response.ok ? "" : body.detail || response.statusText;
  }
  if (own) {
    $("cancel").onclick = () => control("cancel");
    $("pause").onclick = () => control("pause");
    $("resume").onclick = () => control("resume");
  }

  // --- re-run from chosen nodes, preview first --------------------------------------------
  let touched = false;  // the user chose: events no longer choose for them
  function openRerun() {
    $("rerun").hidden = false;
    picture.nodes.forEach((n) => {
      const item = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = n.id;
      box.onchange = () => { touched = true; choiceChanged(); };
      item.append(box, ` ${n.id}`);
      $("rerun-nodes").appendChild(item);
    });
    for (const [id, box] of Object.entries(boxes)) {
      if (["FAILED", "CANCELLED"].includes(box.dataset.status)) choose(id, true);
    }
    choiceChanged();
  }
  function choose(id, on) {
    const box = $("rerun-nodes").querySelector(`input[value="${CSS.escape(id)}"]`);
    if (box) { box.checked = on; choiceChanged(); }
  }
  const chosen = () => [...$("rerun-nodes").querySelectorAll("input:checked")].map((b) => b.value);
  function choiceChanged() {
    $("chosen").textContent = chosen().join(", ") || "-";
    $("confirm-rerun").disabled = true;  // a new choice needs a new preview
    $("preview").textContent = "";
    Object.values(boxes).forEach((box) => {
      delete box.dataset.plan;
      delete box.dataset.sensitive;
      box.querySelector(".plan").textContent = "";
    });
  }
  const post = (path) => fetch(`/api/executions/${runId}/${path}`, {
    method: "POST", credentials: "same-origin",
    headers: {"X-CSRFToken": csrf, "Content-Type": "application/json"},
    body: JSON.stringify({from_nodes: chosen()}),
  });
  async function answered(response) {
    const body = await response.json().catch(() => ({}));
    if (response.ok) return body;
    const problems = (body.errors || []).map((e) => e.message).filter(Boolean);
    const p = document.createElement("p");
    p.className = "problem";
    p.textContent = [body.detail || response.statusText, ...problems].join(": ");
    $("preview").replaceChildren(p);
    return null;
  }
  function showPreview(preview) {
    const sensitive = new Set(preview.sensitive);
    for (const [ids, plan] of [[preview.reused, "reused"], [preview.run, "run"]]) {
      ids.forEach((id) => {
        const box = boxes[id];
        if (!box) return;
        box.dataset.plan = plan;
        if (sensitive.has(id)) box.dataset.sensitive = "";
        box.querySelector(".plan").textContent =
          plan === "reused" ? "reused" : sensitive.has(id) ? "runs · fires again" : "runs";
      });
    }
    const cost = preview.max_cost > preview.min_cost
      ? `${preview.min_cost}–${preview.max_cost}` : `${preview.min_cost}`;
    const lines = [
      ["Reused", preview.reused.join(", ") || "none"],
      ["Runs", preview.run.join(", ") || "none"],
      ["Fires again (sends, posts or pays)", preview.sensitive.join(", ") || "none"],
      ["Costs", `${cost} credits` + (preview.token_priced.length
        ? ` (model answers up to ${preview.token_priced.map(
            (t) => `${t.node_id}: ${t.answer_tokens} tokens`).join(", ")})` : "")],
    ];
    $("preview").replaceChildren(...lines.map(([label, text]) => {
      const p = document.createElement("p");
      p.dataset.line = label.split(" ")[0].toLowerCase();
      if (label.startsWith("Fires") && preview.sensitive.length) p.className = "sensitive";
      p.textContent = `${label}: ${text}`;
      return p;
    }));
    $("confirm-rerun").disabled = false;
  }
  if (own) {
    $("preview-rerun").onclick = async () => {
      const preview = await answered(await post("rerun/preview/"));
      if (preview) showPreview(preview);
    };
    $("confirm-rerun").onclick = async () => {
      $("confirm-rerun").disabled = true;
      const rerun = await answered(await post("rerun/"));
      if (rerun) location.assign(`/console/runs/${rerun.id}/`);
    };
  }
})();
