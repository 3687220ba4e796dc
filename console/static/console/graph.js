// A graph's page: its picture, and a Run form built from its input_schema (a control per
// input by its type); files are uploaded first (/api/files/) and passed as references.
(() => {
  const $ = (id) => document.getElementById(id);
  const csrf = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
  const picture = JSON.parse($("picture").textContent);
  const schema = JSON.parse($("input-schema").textContent);
  window.drawGraph($("graph"), picture, null);

  const form = $("run-form");
  const required = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {}).map(([name, prop]) => {
    const field = document.createElement("div");
    field.className = "field";
    const id = `input-${name}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = name + (required.has(name) ? " *" : "");
    let control;
    const isFile = prop.type === "object" && prop.properties && prop.properties.$file;
    if (prop.enum) {
      control = document.createElement("select");
      prop.enum.forEach((option) => {
        const o = document.createElement("option");
        o.value = JSON.stringify(option);
        o.textContent = String(option);
        if (JSON.stringify(prop.default) === o.value) o.selected = true;
        control.appendChild(o);
      });
    } else if (prop.type === "boolean") {
      control = document.createElement("input");
      control.type = "checkbox";
      control.checked = prop.default === true;
    } else if (isFile) {
      control = document.createElement("input");
      control.type = "file";
    } else if (prop.type === "integer" || prop.type === "number") {
      control = document.createElement("input");
      control.type = "number";
      if (prop.type === "number") control.step = "any";
      if (prop.default !== undefined) control.value = prop.default;
    } else if (["date", "time", "date-time"].includes(prop.format)) {
      control = document.createElement("input");
      control.type = {date: "date", time: "time", "date-time": "datetime-local"}[prop.format];
      if (prop.format === "time") control.step = "1";
      if (prop.default !== undefined) control.value = prop.default;
    } else if (prop.type === "string" && prop.maxLength) {
      control = document.createElement("input");
      control.type = "text";
      control.maxLength = prop.maxLength;
      if (prop.default !== undefined) control.value = prop.default;
    } else {
      control = document.createElement("textarea");
      control.rows = prop.type === "string" ? 4 : 3;
      if (prop.default !== undefined) {
        control.value = typeof prop.default === "string" ? prop.default : JSON.stringify(prop.default, null, 2);
      }
    }
    control.id = id;
    control.name = name;
    field.append(label, control);
    const hint = document.createElement("span");
    hint.className = "hint";
    hint.textContent = [prop.description, prop.type === undefined && !prop.enum && !isFile
      ? "any JSON value, or text" : ""].filter(Boolean).join(" · ");
    if (hint.textContent) field.appendChild(hint);
    form.appendChild(field);
    return {name, prop, control, isFile};
  });
  const submit = document.createElement("button");
  submit.type = "submit";
  submit.className = "primary";
  submit.textContent = "Run";
  submit.id = "run-submit";
  form.appendChild(submit);
  if (!fields.length) {
    const none = document.createElement("p");
    none.className = "muted";
    none.textContent = "This graph takes no inputs.";
    form.prepend(none);
  }

  async function valueOf({prop, control, isFile}) {
    if (prop.enum) return JSON.parse(control.value);
    if (prop.type === "boolean") return control.checked;
    if (isFile) {
      if (!control.files.length) return undefined;
      const data = new FormData();
      data.append("file", control.files[0]);
      const made = await fetch("/api/files/", {method: "POST", credentials: "same-origin",
                                               headers: {"X-CSRFToken": csrf}, body: data});
      const body = await made.json();
      if (!made.ok) throw new Error(`${control.name}: ${body.detail}`);
      return body.reference;
    }
    if (control.value === "") return undefined;
    if (prop.format === "date-time" && control.value.length === 16) return `${control.value}:00`;
    if (prop.type === undefined && !prop.enum) {
      try { return JSON.parse(control.value); } catch { return control.value; }
    }
    return control.value;  // the server coerces "42" for an integer
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    $("run-problem").textContent = "";
    submit.disabled = true;
    try {
      const inputs = {};
      for (const field of fields) {
        const value = await valueOf(field);
        if (value !== undefined) inputs[field.name] = value;
      }
      const response = await fetch(`/api/graphs/${window.GRAPH.id}/execute/`, {
        method: "POST", credentials: "same-origin",
        headers: {"X-CSRFToken": csrf, "Content-Type": "application/json"},
        body: JSON.stringify({inputs, version: window.GRAPH.version}),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        location.assign(`/console/runs/${body.id}/`);
        return;
      }
      $("run-problem").textContent = body.detail || response.statusText;
    } catch (error) {
      $("run-problem").textContent = error.message;
    }
    submit.disabled = false;
  });
})();
