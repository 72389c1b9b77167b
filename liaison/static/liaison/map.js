// Accounts and our sites on a Leaflet map. Tiles only if the install configures a tile server
// (MAP_TILE_URL): hospital networks are often closed, and the markers alone still answer
// "where are my accounts around our sites".
(function () {
  const el = document.getElementById("map");
  if (!el || !window.L) return;
  const accounts = JSON.parse(document.getElementById("map-accounts").textContent);
  const sites = JSON.parse(document.getElementById("map-sites").textContent);
  const palettes = {
    stage: { target: "#90a4ae", contacted: "#42a5f5", engaged: "#7e57c2", referring: "#2e7d32", at_risk: "#ef6c00", lapsed: "#c62828" },
    tier: { A: "#c62828", B: "#ef6c00", C: "#1e88e5", "": "#90a4ae" },
    trend: { rising: "#2e7d32", steady: "#1e88e5", cooling: "#ef6c00", unknown: "#90a4ae" },
  };
  const labels = {
    stage: { target: "Target", contacted: "Contacted", engaged: "Engaged", referring: "Referring", at_risk: "At risk", lapsed: "Lapsed" },
    tier: { A: "Tier A", B: "Tier B", C: "Tier C", "": "No tier" },
    trend: { rising: "Rising", steady: "Steady", cooling: "Cooling", unknown: "Unknown" },
  };
  // Leaflet guesses its default marker images from leaflet.css's URL, which the hashed static
  // file names defeat (it then asks for /outreach/map/marker-icon.png): give it the real URLs.
  L.Icon.Default.imagePath = "";
  L.Icon.Default.mergeOptions({
    iconUrl: el.dataset.markerIcon,
    iconRetinaUrl: el.dataset.markerIcon2x,
    shadowUrl: el.dataset.markerShadow,
  });
  const map = L.map(el, { minZoom: 3, maxZoom: 18, zoomSnap: 0.25 });
  if (el.dataset.tiles) {
    L.tileLayer(el.dataset.tiles, { maxZoom: 19, attribution: el.dataset.attribution || "" }).addTo(map);
  }
  const layer = L.layerGroup().addTo(map);
  const bounds = [];
  sites.forEach(function (s) {
    L.marker([s.lat, s.lon], { title: s.name, alt: s.name }).bindPopup("<strong>Our site</strong><br>" + escapeHtml(s.name)).addTo(map);
    bounds.push([s.lat, s.lon]);
  });
  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]; });
  }
  function draw() {
    const mode = document.getElementById("colour-by").value;
    const mine = document.getElementById("mine-only").checked;
    layer.clearLayers();
    let n = 0;
    accounts.forEach(function (a) {
      if (mine && a.owner !== el.dataset.me) return;
      const colour = palettes[mode][a[mode]] || "#90a4ae";
      const m = L.circleMarker([a.lat, a.lon], { radius: a.tier === "A" ? 9 : 7, color: "#263238", weight: 1, fillColor: colour, fillOpacity: 0.85 });
      m.bindPopup('<a href="' + a.url + '">' + escapeHtml(a.name) + "</a><br>" + escapeHtml(a.stage_label) + (a.tier ? " · tier " + a.tier : "") + (a.owner ? "<br>" + escapeHtml(a.owner) : ""));
      m.options.className = "account-marker";
      m.addTo(layer);
      n += 1;
      if (bounds.length < 2000) bounds.push([a.lat, a.lon]);
    });
    document.getElementById("marker-count").textContent = n;
    const legend = document.getElementById("legend");
    legend.innerHTML = "";
    Object.keys(palettes[mode]).forEach(function (k) {
      const span = document.createElement("span");
      span.innerHTML = '<i style="background:' + palettes[mode][k] + '"></i>' + labels[mode][k];
      legend.appendChild(span);
    });
  }
  document.getElementById("colour-by").addEventListener("change", draw);
  document.getElementById("mine-only").addEventListener("change", draw);
  draw();
  map.invalidateSize();
  if (bounds.length) map.fitBounds(bounds, { padding: [20, 20], maxZoom: 14 });
  else map.setView([39.5, -98.35], 4);
})();
