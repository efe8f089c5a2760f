// The storefront: the catalogue, a cart kept in this browser, placing an
// order, and an order's page. Everything it shows comes from the API
// (/api/...), through the same front doors as the page; every error the
// API answers is shown to the person, with the problem's own words.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const root = document.documentElement;
  const cartKey = "shop.cart";
  const pendingKey = "shop.pending";

  const state = {
    products: new Map(), // id -> product, from the last catalogue read
    cart: loadCart(), // id -> quantity
    placing: false,
  };

  const money = (cents) => (cents / 100).toLocaleString("en", { style: "currency", currency: "EUR" });

  // ShopError carries an API problem (RFC 9457) or a network failure.
  class ShopError extends Error {
    constructor(title, detail, status, problem) {
      super(detail ? `${title}: ${detail}` : title);
      this.title = title;
      this.detail = detail;
      this.status = status;
      this.problem = problem || null;
    }
  }

  // api sends one request and returns the decoded JSON, or throws a
  // ShopError made of the problem the API answered.
  async function api(method, path, body, headers = {}) {
    const opts = { method, headers: { Accept: "application/json, application/problem+json", ...headers } };
    if (body !== undefined) {
      opts.body = JSON.stringify(body);
      opts.headers["Content-Type"] = "application/json";
    }
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw new ShopError("The shop cannot be reached", `check the connection and try again (${e.message})`, 0);
    }
    const servedBy = resp.headers.get("X-Served-By");
    if (servedBy) $("served-by").textContent = servedBy;
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!resp.ok) {
      const p = data && typeof data === "object" ? data : {};
      let detail = p.detail || "";
      if (Array.isArray(p.errors) && p.errors.length) {
        detail += (detail ? " — " : "") + p.errors.map((e) => `${e.field}: ${e.detail}`).join("; ");
      }
      if (resp.status === 503 && resp.headers.get("Retry-After")) {
        detail += ` Try again in ${resp.headers.get("Retry-After")} s.`;
      }
      throw new ShopError(p.title || `${resp.status} ${resp.statusText}`, detail, resp.status, p);
    }
    return { data, resp };
  }

  function showError(err) {
    $("error-title").textContent = err.title || "Something went wrong";
    $("error-detail").textContent = err.detail || (err.title ? "" : String(err));
    $("error").hidden = false;
    root.dataset.error = String(err.status ?? "");
  }

  function clearError() {
    $("error").hidden = true;
    delete root.dataset.error;
  }

  function loadCart() {
    try {
      return new Map(JSON.parse(localStorage.getItem(cartKey) || "[]"));
    } catch {
      return new Map();
    }
  }

  function saveCart() {
    try {
      localStorage.setItem(cartKey, JSON.stringify([...state.cart]));
    } catch {
      // A browser that keeps no storage keeps the cart for this page only.
    }
  }

  // newKey makes an Idempotency-Key from the browser's random source
  // (crypto.randomUUID needs a secure context; getRandomValues does not).
  function newKey() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  async function loadCatalogue() {
    const { data, resp } = await api("GET", "/api/products");
    state.products = new Map(data.map((p) => [p.id, p]));
    $("stale").hidden = !(resp.headers.get("Cache-Status") || "").includes("hit");
    $("catalogue-loading").hidden = true;
    $("products").hidden = false;
    renderCatalogue();
    renderCart();
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function renderCatalogue() {
    const body = $("products").tBodies[0];
    body.replaceChildren();
    for (const p of state.products.values()) {
      const tr = document.createElement("tr");
      tr.dataset.productId = String(p.id);
      const name = cell(p.name);
      const desc = document.createElement("span");
      desc.className = "desc";
      desc.textContent = p.description || "";
      name.append(document.createElement("br"), desc);
      tr.append(name, cell(money(p.price), "num price"), cell(p.stock > 0 ? String(p.stock) : "sold out", "num stock" + (p.stock > 0 ? "" : " out")));
      const act = document.createElement("td");
      const qty = document.createElement("input");
      qty.type = "number";
      qty.min = "1";
      qty.value = "1";
      qty.setAttribute("aria-label", `Quantity of ${p.name}`);
      const add = document.createElement("button");
      add.type = "button";
      add.textContent = "Add to cart";
      add.disabled = p.stock <= (state.cart.get(p.id) || 0);
      add.addEventListener("click", () => addToCart(p.id, Number(qty.value)));
      act.append(qty, " ", add);
      tr.append(act);
      body.append(tr);
    }
  }

  // addToCart is what the "Add to cart" button does.
  function addToCart(id, quantity) {
    clearError();
    const p = state.products.get(id);
    if (!p) {
      showError(new ShopError("Not in the catalogue", `product ${id} does not exist`, 404));
      return false;
    }
    if (!Number.isInteger(quantity) || quantity < 1) {
      showError(new ShopError("Invalid quantity", "give a whole number of at least 1", 422));
      return false;
    }
    state.cart.set(id, (state.cart.get(id) || 0) + quantity);
    saveCart();
    renderCart();
    renderCatalogue();
    return true;
  }

  function removeFromCart(id) {
    state.cart.delete(id);
    saveCart();
    renderCart();
    renderCatalogue();
  }

  function renderCart() {
    const body = $("cart-lines").tBodies[0];
    body.replaceChildren();
    let total = 0;
    for (const [id, q] of state.cart) {
      const p = state.products.get(id);
      const name = p ? p.name : `product ${id}`;
      const amount = p ? p.price * q : 0;
      total += amount;
      const tr = document.createElement("tr");
      tr.dataset.productId = String(id);
      tr.append(cell(name), cell(String(q), "num"), cell(p ? money(amount) : "?", "num"));
      const act = document.createElement("td");
      const rm = document.createElement("button");
      rm.type = "button";
      rm.className = "link";
      rm.textContent = "Remove";
      rm.addEventListener("click", () => removeFromCart(id));
      act.append(rm);
      tr.append(act);
      body.append(tr);
    }
    const empty = state.cart.size === 0;
    $("cart-empty").hidden = !empty;
    $("cart-lines").hidden = empty;
    $("cart-total").textContent = money(total);
    $("place").disabled = empty || state.placing;
    $("place").textContent = state.placing ? "Placing the order…" : "Place order";
  }

  // pendingOrder returns the key for the cart as it is: the same key
  // until the order succeeds, so that pressing the button again after a
  // failure (or reloading) cannot place the order twice; a changed cart is
  // a new order with a new key.
  function pendingOrder(items) {
    const sig = JSON.stringify(items);
    let pending = null;
    try {
      pending = JSON.parse(sessionStorage.getItem(pendingKey) || "null");
    } catch {
      pending = null;
    }
    if (!pending || pending.sig !== sig) {
      pending = { sig, key: newKey() };
      try {
        sessionStorage.setItem(pendingKey, JSON.stringify(pending));
      } catch {
        // The key then lives as long as this page.
      }
    }
    return pending.key;
  }

  // placeOrder is what the "Place order" button does.
  async function placeOrder() {
    if (state.placing || state.cart.size === 0) return;
    clearError();
    const items = [...state.cart].map(([id, q]) => ({ product_id: id, quantity: q }));
    const key = pendingOrder(items);
    state.placing = true;
    root.dataset.state = "placing";
    renderCart();
    try {
      const { data } = await api("POST", "/api/orders", { items }, { "Idempotency-Key": key });
      state.cart.clear();
      saveCart();
      sessionStorage.removeItem(pendingKey);
      history.pushState({ order: data.id }, "", `/?order=${data.id}`);
      showOrder(data);
      loadCatalogue().catch(showError);
    } catch (e) {
      root.dataset.state = "error";
      showError(e);
    } finally {
      state.placing = false;
      renderCart();
    }
  }

  function showOrder(o) {
    $("order-id").textContent = `#${o.id}`;
    $("order").dataset.orderId = String(o.id);
    $("order-when").textContent = `Placed ${new Date(o.created_at).toLocaleString("en")}.`;
    const body = $("order-items").tBodies[0];
    body.replaceChildren();
    for (const it of o.items) {
      const tr = document.createElement("tr");
      tr.dataset.productId = String(it.product_id);
      tr.dataset.quantity = String(it.quantity);
      tr.append(cell(it.name), cell(String(it.quantity), "num"), cell(money(it.price), "num"), cell(money(it.price * it.quantity), "num"));
      body.append(tr);
    }
    $("order-total").textContent = money(o.total);
    $("order").hidden = false;
    $("order").scrollIntoView?.({ block: "start" });
    root.dataset.state = "order";
  }

  async function openOrder(id) {
    try {
      const { data } = await api("GET", `/api/orders/${encodeURIComponent(id)}`);
      showOrder(data);
    } catch (e) {
      root.dataset.state = "error";
      showError(e);
    }
  }

  // route shows what the address asks for: ?order=ID is an order's page;
  // ?demo=order:1x2,3x1 fills the cart and presses "Place order" through
  // the same code the buttons run (for demonstrations and the browser
  // test, where nobody clicks). It runs on load and on Back and Forward.
  async function route() {
    const q = new URLSearchParams(location.search);
    if (q.has("order")) {
      await openOrder(q.get("order"));
      return;
    }
    $("order").hidden = true;
    root.dataset.state = "ready";
    const demo = q.get("demo");
    if (demo && demo.startsWith("order:")) {
      // A demo order runs once: its address becomes the storefront's
      // own, so that neither Back nor a reload places it again (each
      // run would be a new cart with a new Idempotency-Key).
      history.replaceState(null, "", location.pathname);
      state.cart.clear();
      for (const part of demo.slice("order:".length).split(",")) {
        const [id, qty] = part.split("x").map(Number);
        if (!addToCart(id, qty)) return;
      }
      await placeOrder();
    }
  }

  async function start() {
    $("place").addEventListener("click", placeOrder);
    $("error-close").addEventListener("click", clearError);
    window.addEventListener("popstate", () => route());
    try {
      await loadCatalogue();
      root.dataset.state = "ready";
    } catch (e) {
      $("catalogue-loading").textContent = "The catalogue could not be loaded.";
      root.dataset.state = "error";
      showError(e);
      return;
    }
    await route();
  }

  start();
})();
