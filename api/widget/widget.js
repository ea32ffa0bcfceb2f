/*
 * Parley chat widget loader.
 *
 * Embed with one tag:
 *   <script src="https://parley.example/widget.js" data-bot-id="BOT_UUID"
 *           data-site-key="ps_..." async></script>
 *
 * It draws a floating button and, on first use, an iframe holding the chat
 * (served from the same origin as this file). Every style is set through the
 * CSSOM inside a shadow root, so it works under a host page Content Security
 * Policy without 'unsafe-inline' styles.
 */
(() => {
  'use strict';
  if (window.Parley && window.Parley.version) return;

  const isLoader = (s) => s && s.dataset && s.dataset.botId && /\/widget\.js(?:[?#]|$)/.test(s.src || '');
  let script = document.currentScript;
  if (!isLoader(script)) script = [].slice.call(document.querySelectorAll('script[data-bot-id]')).reverse().find(isLoader);
  if (!script) return;

  const data = script.dataset;
  const botId = data.botId;
  const siteKey = data.siteKey || '';
  const api = new URL(script.src, location.href).origin;
  const colourRe = /^#(?:[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i;
  const accentOverride = colourRe.test(data.accentColor || '') ? data.accentColor : '';
  const positionOverride = /^bottom-(left|right)$/.test(data.position || '') ? data.position : '';
  const activeKey = 'parley:' + botId + ':active';
  const Z = '2147483000';
  const mqSmall = matchMedia('(max-width: 479.98px)');
  const mqCalm = matchMedia('(prefers-reduced-motion: reduce)');

  let accent = accentOverride || '#3A82FF';
  let left = false;
  let open = false;
  let unread = 0;
  let ready = false;
  let pendingOpen = false;
  let host, btn, badge, iconChat, iconClose, frame;

  const css = (el, props) => {
    for (const k in props) el.style.setProperty(k, props[k]);
    return el;
  };
  const h = (tag, props) => css(document.createElement(tag), props || {});

  const svgNS = 'http://www.w3.org/2000/svg';
  const icon = (d) => {
    const svg = document.createElementNS(svgNS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '28');
    svg.setAttribute('height', '28');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const p = document.createElementNS(svgNS, 'path');
    p.setAttribute('d', d);
    p.setAttribute('fill', 'currentColor');
    svg.appendChild(p);
    return svg;
  };

  const storeGet = (k) => {
    try {
      return localStorage.getItem(k);
    } catch (_) {
      return null;
    }
  };
  const storeSet = (k, v) => {
    try {
      if (v) localStorage.setItem(k, '1');
      else localStorage.removeItem(k);
    } catch (_) {
      /* storage may be disabled */
    }
  };

  // Black or white, whichever reads better on the accent.
  const onAccent = (hex) => {
    let c = hex.slice(1);
    if (c.length < 6) c = c.replace(/./g, '$&$&');
    const lum = [0, 2, 4]
      .map((i) => parseInt(c.slice(i, i + 2), 16) / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4)));
    const l = 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2];
    return 1.05 / (l + 0.05) >= 3 ? '#ffffff' : '#111827';
  };

  function build() {
    host = h('div', { position: 'static' });
    host.id = 'parley-widget';
    const root = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;

    btn = h('button', {
      position: 'fixed',
      bottom: '20px',
      [left ? 'left' : 'right']: '20px',
      width: '56px',
      height: '56px',
      margin: '0',
      padding: '0',
      border: '0',
      'border-radius': '50%',
      background: accent,
      color: onAccent(accent),
      'box-shadow': '0 6px 20px rgba(0,0,0,.2), 0 2px 6px rgba(0,0,0,.12)',
      cursor: 'pointer',
      display: 'flex',
      'align-items': 'center',
      'justify-content': 'center',
      'z-index': Z,
      outline: 'none',
      transition: mqCalm.matches ? 'none' : 'transform .15s ease',
      '-webkit-tap-highlight-color': 'transparent',
    });
    btn.type = 'button';
    btn.setAttribute('aria-expanded', 'false');
    iconChat = icon('M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8.4L4 21.5V18a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2Zm3 6.2a1.3 1.3 0 1 0 0 2.6 1.3 1.3 0 0 0 0-2.6Zm5 0a1.3 1.3 0 1 0 0 2.6 1.3 1.3 0 0 0 0-2.6Zm5 0a1.3 1.3 0 1 0 0 2.6 1.3 1.3 0 0 0 0-2.6Z');
    iconClose = icon('M6.7 5.3 12 10.6l5.3-5.3 1.4 1.4-5.3 5.3 5.3 5.3-1.4 1.4-5.3-5.3-5.3 5.3-1.4-1.4 5.3-5.3-5.3-5.3z');
    css(iconClose, { display: 'none' });
    badge = h('span', {
      position: 'absolute',
      top: '-4px',
      [left ? 'left' : 'right']: '-4px',
      'min-width': '20px',
      height: '20px',
      padding: '0 6px',
      'box-sizing': 'border-box',
      'border-radius': '10px',
      border: '2px solid #fff',
      background: '#dc2626',
      color: '#fff',
      font: '700 11px/16px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif',
      'text-align': 'center',
      display: 'none',
    });
    badge.setAttribute('aria-hidden', 'true');
    btn.append(iconChat, iconClose, badge);
    setUnread(0);

    btn.addEventListener('click', toggle);
    btn.addEventListener('focus', () => {
      let visible = true;
      try {
        visible = btn.matches(':focus-visible');
      } catch (_) {
        /* older engines */
      }
      if (visible) css(btn, { outline: '3px solid ' + accent, 'outline-offset': '3px' });
    });
    btn.addEventListener('blur', () => css(btn, { outline: 'none' }));
    btn.addEventListener('mouseenter', () => mqCalm.matches || css(btn, { transform: 'scale(1.06)' }));
    btn.addEventListener('mouseleave', () => css(btn, { transform: 'none' }));

    root.appendChild(btn);
    document.body.appendChild(host);

    addEventListener('message', onMessage);
    addEventListener('keydown', (e) => {
      if (open && (e.key === 'Escape' || e.key === 'Esc')) close();
    });
    const relayout = () => frame && layout();
    mqSmall.addEventListener ? mqSmall.addEventListener('change', relayout) : mqSmall.addListener(relayout);
  }

  function setUnread(n) {
    unread = n;
    badge.textContent = n > 9 ? '9+' : String(n);
    css(badge, { display: n > 0 && !open ? 'block' : 'none' });
    btn.setAttribute('aria-label', n > 0 ? 'Open chat, ' + n + ' unread message' + (n > 1 ? 's' : '') : 'Open chat');
  }

  function createFrame() {
    if (frame) return;
    const q = new URLSearchParams({ bot_id: botId, site_key: siteKey, parent_origin: location.origin });
    if (accentOverride) q.set('accent', accentOverride);
    frame = h('iframe', {
      position: 'fixed',
      border: '0',
      margin: '0',
      padding: '0',
      background: '#fff',
      'color-scheme': 'light',
      'z-index': Z,
    });
    frame.title = 'Chat';
    frame.src = api + '/widget/frame.html?' + q;
    // Start from the closed look so that opening animates.
    layout(false);
    host.shadowRoot ? host.shadowRoot.appendChild(frame) : host.appendChild(frame);
    void frame.offsetWidth;
  }

  function layout(shown = open) {
    const small = mqSmall.matches;
    const calm = mqCalm.matches;
    const side = left ? 'left' : 'right';
    css(frame, {
      top: small ? '0' : 'auto',
      bottom: small ? '0' : '88px',
      left: small ? '0' : left ? '20px' : 'auto',
      right: small ? '0' : left ? 'auto' : '20px',
      width: small ? '100vw' : '380px',
      height: small ? '100%' : '600px',
      'max-width': small ? 'none' : 'calc(100vw - 40px)',
      'max-height': small ? 'none' : 'calc(100% - 108px)',
      'border-radius': small ? '0' : '16px',
      'box-shadow': small ? 'none' : '0 16px 48px rgba(15,23,42,.22), 0 2px 8px rgba(15,23,42,.1)',
      'transform-origin': 'bottom ' + side,
      visibility: shown ? 'visible' : 'hidden',
      opacity: shown ? '1' : '0',
      transform: shown || calm || small ? 'none' : 'translateY(12px) scale(.98)',
      'pointer-events': shown ? 'auto' : 'none',
      transition: calm
        ? 'none'
        : 'opacity .18s ease, transform .18s ease, visibility 0s linear ' + (shown ? '0s' : '.18s'),
    });
    frame.inert = !shown;
    css(btn, { display: small && shown ? 'none' : 'flex' });
    css(iconChat, { display: shown ? 'none' : 'block' });
    css(iconClose, { display: shown ? 'block' : 'none' });
  }

  function post(msg) {
    if (frame && ready && frame.contentWindow) frame.contentWindow.postMessage(msg, api);
  }

  function show(next) {
    if (!btn) {
      pendingOpen = next;
      return;
    }
    if (next === open) return;
    open = next;
    if (open) createFrame();
    btn.setAttribute('aria-expanded', String(open));
    if (!open) btn.focus();
    layout();
    setUnread(open ? 0 : unread);
    post({ type: 'parley:visibility', open });
    if (open) frame.focus();
  }
  const openChat = () => show(true);
  const close = () => show(false);
  const toggle = () => show(!open);

  function onMessage(e) {
    if (!frame || e.source !== frame.contentWindow || e.origin !== api) return;
    const m = e.data;
    if (!m || typeof m.type !== 'string') return;
    if (m.type === 'parley:ready') {
      ready = true;
      post({ type: 'parley:visibility', open });
    } else if (m.type === 'parley:close') {
      // Also sent by a hidden chat that still has focus: give it back to the button.
      if (open) close();
      else if (host.shadowRoot && host.shadowRoot.activeElement === frame) btn.focus();
    } else if (m.type === 'parley:unread') {
      setUnread(open ? 0 : Math.max(0, Number(m.count) || 0));
    } else if (m.type === 'parley:active') {
      storeSet(activeKey, m.active === true);
    }
  }

  window.Parley = { open: openChat, close, toggle, version: 1 };

  const start = (cfg) => {
    cfg = cfg || {};
    if (!accentOverride && colourRe.test(cfg.accent_color || '')) accent = cfg.accent_color;
    left = (positionOverride || cfg.position) === 'bottom-left';
    build();
    // A returning visitor with a conversation: load the chat hidden so new replies show as unread.
    if (storeGet(activeKey)) createFrame();
    if (pendingOpen) show(true);
  };

  const whenBody = (fn) => (document.body ? fn() : addEventListener('DOMContentLoaded', fn));

  fetch(api + '/api/v1/public/bots/' + encodeURIComponent(botId) + '/config', {
    headers: { 'X-Parley-Site-Key': siteKey },
    credentials: 'omit',
  })
    .then((r) =>
      r.ok
        ? r.json()
        : r.json().then(
            (b) => Promise.reject(new Error((b && b.error && b.error.message) || 'HTTP ' + r.status)),
            () => Promise.reject(new Error('HTTP ' + r.status)),
          ),
    )
    .then(
      (cfg) => whenBody(() => start(cfg)),
      (err) => console.warn('Parley chat is unavailable: ' + err.message),
    );
})();
