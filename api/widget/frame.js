/*
 * Parley chat: the conversation UI that runs inside the widget's iframe.
 *
 * Everything from the server (answers, knowledge text, replies) is turned into
 * DOM nodes with createElement and textContent only, so no data can inject
 * markup. Talks to the page around it with postMessage, to one exact origin.
 */
(() => {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const botId = params.get('bot_id') || '';
  const siteKey = params.get('site_key') || '';
  const parentOrigin = params.get('parent_origin') || '';
  const embedded = window.parent !== window;
  const base = '/api/v1/public/bots/' + encodeURIComponent(botId);
  const ns = 'parley:' + botId + ':';
  const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
  const ICONS = {
    up: 'M2 10h4v11H2zm6 11h9.2a2 2 0 0 0 2-1.6l1.7-8A2 2 0 0 0 19 9h-5.6l.9-4.3a1.5 1.5 0 0 0-.4-1.4L13 2 7.6 7.4A2 2 0 0 0 7 8.8V19a2 2 0 0 0 1 2z',
    down: 'M22 14h-4V3h4zm-6-11H6.8a2 2 0 0 0-2 1.6l-1.7 8A2 2 0 0 0 5 15h5.6l-.9 4.3a1.5 1.5 0 0 0 .4 1.4L11 22l5.4-5.4a2 2 0 0 0 .6-1.4V5a2 2 0 0 0-1-2z',
    file: 'M6 2h8l6 6v12a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm7 1.5V9h5.5z',
  };

  const el = {
    app: $('app'),
    boot: $('boot'),
    title: $('title'),
    avatar: $('avatar'),
    banner: $('banner'),
    scroll: $('scroll'),
    log: $('log'),
    prompts: $('prompts'),
    extra: $('extra'),
    notice: $('notice'),
    form: $('composer'),
    input: $('input'),
    typing: $('typing'),
    send: $('send'),
    human: $('human'),
    fileBox: $('file'),
    fileName: $('file-name'),
    fileInput: $('file-input'),
  };

  let cfg = null;
  let conv = null;
  let status = 'open';
  let open = !embedded;
  let unread = 0;
  let busy = false;
  let epoch = 0;
  let sendSeq = 0;
  let lastSeen = '';
  let lastSeenMs = 0;
  let pollTimer = 0;
  let polling = false;
  let pendingFile = null;
  let leadForm = null;
  const seen = new Map();
  // Rows of a failed send: the server may have stored the message anyway.
  let orphans = [];

  // ---- storage (falls back to memory when the browser refuses it) ----
  const mem = {};
  const store = {
    get(k) {
      try {
        return localStorage.getItem(ns + k);
      } catch (_) {
        return mem[k] || null;
      }
    },
    set(k, v) {
      try {
        if (v == null) localStorage.removeItem(ns + k);
        else localStorage.setItem(ns + k, v);
      } catch (_) {
        if (v == null) delete mem[k];
        else mem[k] = v;
      }
    },
  };

  const newVisitor = () => {
    const b = crypto.getRandomValues(new Uint8Array(16));
    const t = 'v_' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    store.set('visitor_token', t);
    return t;
  };
  const visitor = () => store.get('visitor_token') || newVisitor();

  const saveConv = (c) => {
    conv = c;
    store.set('conversation_id', c ? c.id : null);
    store.set('conversation_token', c ? c.token : null);
    post({ type: 'parley:active', active: !!c });
  };

  // ---- messages to the page around the frame ----
  function post(msg) {
    if (!embedded || !parentOrigin) return;
    try {
      window.parent.postMessage(msg, parentOrigin);
    } catch (_) {
      /* not a valid origin */
    }
  }

  // ---- DOM helpers ----
  function mk(tag, text, cls) {
    const n = document.createElement(tag);
    if (text != null) n.textContent = text;
    if (cls) n.className = cls;
    return n;
  }
  function svg(d) {
    const s = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    s.setAttribute('viewBox', '0 0 24 24');
    s.setAttribute('aria-hidden', 'true');
    s.setAttribute('focusable', 'false');
    const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    p.setAttribute('d', d);
    s.append(p);
    return s;
  }
  function safeUrl(u) {
    try {
      const url = new URL(String(u));
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : '';
    } catch (_) {
      return '';
    }
  }
  function link(href, text) {
    const a = mk('a', text);
    a.href = href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer nofollow';
    return a;
  }

  // ---- safe Markdown subset ----
  const INLINE = /\*\*(.+?)\*\*|`([^`\n]+)`|\[([^\]\n]+)\]\(([^)\s]+)\)|\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]/g;

  function inline(parent, text, cite) {
    let last = 0;
    for (const m of text.matchAll(INLINE)) {
      if (m.index > last) parent.append(text.slice(last, m.index));
      last = m.index + m[0].length;
      if (m[1] !== undefined) {
        const b = mk('strong');
        inline(b, m[1], cite);
        parent.append(b);
      } else if (m[2] !== undefined) {
        parent.append(mk('code', m[2]));
      } else if (m[3] !== undefined) {
        const href = safeUrl(m[4]);
        if (href) {
          const a = link(href);
          inline(a, m[3], null);
          parent.append(a);
        } else parent.append(m[0]);
      } else if (cite) {
        for (const n of m[5].split(',')) parent.append(cite(Number(n)));
      } else parent.append(m[0]);
    }
    if (last < text.length) parent.append(text.slice(last));
  }

  function markdown(text, cite) {
    const frag = document.createDocumentFragment();
    const lines = String(text || '').replace(/\r\n?/g, '\n').split('\n');
    let para = null;
    let list = null;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let m;
      if (/^\s*```/.test(line)) {
        const code = [];
        while (++i < lines.length && !/^\s*```/.test(lines[i])) code.push(lines[i]);
        const pre = mk('pre');
        pre.append(mk('code', code.join('\n')));
        frag.append(pre);
        para = list = null;
      } else if (!line.trim()) {
        para = list = null;
      } else if ((m = /^\s*([-*]|\d{1,9}[.)])\s+(.*)$/.exec(line))) {
        const tag = /\d/.test(m[1]) ? 'OL' : 'UL';
        if (!list || list.tagName !== tag) {
          list = mk(tag);
          const start = parseInt(m[1], 10);
          if (tag === 'OL' && start !== 1) list.start = start;
          frag.append(list);
        }
        const li = mk('li');
        inline(li, m[2], cite);
        list.append(li);
        para = null;
      } else if (list && /^\s{2,}\S/.test(line)) {
        const li = list.lastChild;
        li.append(mk('br'));
        inline(li, line.trim(), cite);
      } else if ((m = /^#{1,6}\s+(.*)$/.exec(line))) {
        const p = mk('p');
        const b = mk('strong');
        inline(b, m[1], cite);
        p.append(b);
        frag.append(p);
        para = list = null;
      } else {
        list = null;
        if (para) para.append(mk('br'));
        else frag.append((para = mk('p')));
        inline(para, line, cite);
      }
    }
    return frag;
  }

  // ---- answers with citations ----
  const sourceLabel = (s) => {
    const name = s.title || s.document || 'Source';
    return s.page != null ? name + ', p. ' + s.page : name;
  };

  function renderAnswer(box, m) {
    const show = cfg.show_sources !== false;
    const sources = show && Array.isArray(m.sources) ? m.sources : [];
    const cited = new Set();
    let text = m.text || '';
    if (!show) text = text.replace(/ ?\[\d{1,2}(?:\s*,\s*\d{1,2})*\](?!\()/g, '');
    const cite = (n) => {
      const s = sources[n - 1];
      const sup = mk('sup', null, 'cite');
      if (!s) {
        sup.append(String(n));
        return sup;
      }
      cited.add(n);
      const label = 'Source ' + n + ': ' + sourceLabel(s);
      const href = safeUrl(s.url);
      const ref = href ? link(href, String(n)) : mk('span', String(n));
      ref.title = sourceLabel(s);
      ref.setAttribute('aria-label', label);
      sup.append(ref);
      return sup;
    };
    box.append(markdown(text, show ? cite : null));
    const listed = sources.map((s, i) => [i + 1, s]).filter(([n]) => !cited.size || cited.has(n));
    if (!listed.length) return;
    const wrap = mk('div', null, 'sources');
    wrap.append(mk('p', 'Sources', 'sources-h'));
    const ol = mk('ol');
    for (const [n, s] of listed) {
      const li = mk('li');
      li.value = n;
      const href = safeUrl(s.url);
      li.append(href ? link(href, sourceLabel(s)) : mk('span', sourceLabel(s)));
      ol.append(li);
    }
    wrap.append(ol);
    box.append(wrap);
  }

  // ---- message list ----
  const rating = (m) => (m.feedback && typeof m.feedback === 'object' ? m.feedback.rating : m.feedback) || null;

  function addMessage(m) {
    const row = mk('div', null, 'msg ' + m.role);
    row.dataset.role = m.role;
    if (m.role === 'agent') row.append(mk('div', m.author || 'Support team', 'who'));
    const bubble = mk('div', null, 'bubble');
    row.append(bubble);
    row._m = m;
    row._b = bubble;
    fill(row);
    const near = el.scroll.scrollHeight - el.scroll.scrollTop - el.scroll.clientHeight < 120;
    el.log.append(row);
    if (m.id) seen.set(m.id, row);
    if (near || m.role === 'user') scrollEnd();
    return row;
  }

  // The whole row: state attributes, the bubble, the files and the rating.
  function fill(row) {
    const m = row._m;
    row.dataset.status = m.status || 'complete';
    if (m.id) row.dataset.id = m.id;
    renderBody(row);
    files(row);
    if (m.role === 'assistant' && m.status === 'complete' && m.id && !row._rate) rateRow(row);
  }

  // Only the bubble: the text (with citations and sources) and a failure note.
  function renderBody(row) {
    const m = row._m;
    const b = row._b;
    b.textContent = '';
    if (m.role === 'user') b.textContent = m.text;
    else if (m.status === 'pending' && !m.text) {
      const t = mk('span', null, 'typing');
      t.setAttribute('role', 'img');
      t.setAttribute('aria-label', 'Typing');
      t.append(mk('i'), mk('i'), mk('i'));
      b.append(t);
    } else if (m.role === 'assistant') renderAnswer(b, m);
    else b.append(markdown(m.text));
    if (m.status === 'failed') {
      const p = mk('p', m.error || 'This answer could not be completed.', 'err');
      b.append(p);
      if (m.retry) {
        const r = mk('button', 'Try again', 'link');
        r.type = 'button';
        r.addEventListener('click', m.retry);
        p.append(' ', r);
      }
    }
  }

  function files(row) {
    const list = row._m.attachments || [];
    if (row._f) row._f.remove();
    if (!list.length || !conv) return;
    const box = (row._f = mk('div', null, 'files'));
    for (const a of list) {
      const q = new URLSearchParams({ disposition: 'attachment', site_key: siteKey, token: conv.token });
      const href = base + '/conversations/' + conv.id + '/attachments/' + encodeURIComponent(a.id) + '?' + q;
      const l = mk('a', null, 'chip');
      l.href = href;
      l.download = a.file_name || '';
      l.append(svg(ICONS.file), mk('span', a.file_name || 'File'));
      box.append(l);
    }
    row.append(box);
  }

  function rateRow(row) {
    const box = (row._rate = mk('div', null, 'rate'));
    const buttons = {};
    const sync = () => {
      for (const k in buttons) buttons[k].setAttribute('aria-pressed', String(rating(row._m) === k));
    };
    for (const [value, label] of [
      ['up', 'Helpful'],
      ['down', 'Not helpful'],
    ]) {
      const b = (buttons[value] = mk('button', null, 'rate-b'));
      b.type = 'button';
      b.title = label;
      b.setAttribute('aria-label', label);
      b.append(svg(ICONS[value]));
      b.addEventListener('click', async () => {
        const before = row._m.feedback;
        if (rating(row._m) === value) return;
        row._m.feedback = value;
        sync();
        try {
          const path = '/conversations/' + conv.id + '/messages/' + encodeURIComponent(row._m.id) + '/feedback';
          const saved = await api('POST', path, { rating: value });
          if (saved && saved.feedback) row._m.feedback = saved.feedback;
        } catch (e) {
          row._m.feedback = before;
          notice(explain(e));
        }
        sync();
      });
      box.append(b);
    }
    sync();
    row.append(box);
  }

  function scrollEnd() {
    el.scroll.scrollTop = el.scroll.scrollHeight;
  }

  function notice(text) {
    el.notice.textContent = text || '';
    el.notice.hidden = !text;
  }

  // ---- API ----
  function failure(status, body, res) {
    const e = (body && body.error) || {};
    const err = new Error(e.message || 'Request failed (' + status + ').');
    err.status = status;
    err.code = e.code || '';
    err.details = Array.isArray(e.details) ? e.details : [];
    err.retryAfter = res ? Number(res.headers.get('Retry-After')) || 0 : 0;
    return err;
  }

  async function api(method, path, body, raw) {
    const headers = { 'X-Parley-Site-Key': siteKey };
    if (conv && path.startsWith('/conversations/')) headers['X-Parley-Conversation-Token'] = conv.token;
    const init = { method, headers, credentials: 'omit' };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(base + path, init);
    } catch (_) {
      throw Object.assign(new Error('network'), { code: 'NETWORK', details: [] });
    }
    if (res.ok && raw) return res;
    let data = null;
    try {
      data = await res.json();
    } catch (_) {
      /* empty or not JSON */
    }
    if (!res.ok) throw failure(res.status, data, res);
    return data;
  }

  function explain(e) {
    switch (e.code) {
      case 'NETWORK':
        return 'Connection problem. Check your connection and try again.';
      case 'RATE_LIMITED':
        return 'You are sending messages too quickly. Please wait ' + (e.retryAfter ? e.retryAfter + ' seconds' : 'a moment') + ' and try again.';
      case 'QUOTA_EXCEEDED':
        return 'Chat is unavailable right now. Please try again later.';
      case 'UNAUTHORIZED':
      case 'ORIGIN_NOT_ALLOWED':
      case 'BOT_NOT_FOUND':
        return 'Chat is not available on this site.';
      case 'PAYLOAD_TOO_LARGE':
        return 'That file is too large.';
      case 'UNSUPPORTED_MEDIA_TYPE':
        return 'That type of file cannot be sent.';
      case 'VALIDATION_FAILED':
        return (e.details[0] && e.details[0].message) || e.message;
    }
    return e.message || 'Something went wrong. Please try again.';
  }

  // Server-sent events from a fetch body: blocks split by a blank line.
  async function* events(body) {
    const reader = body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    const parse = (block) => {
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (!line || line[0] === ':') continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      return data.length ? { event, data: data.join('\n') } : null;
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        buf += done ? dec.decode() : dec.decode(value, { stream: true });
        buf = buf.replace(/\r\n|\r(?!$)/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = parse(buf.slice(0, i));
          buf = buf.slice(i + 2);
          if (ev) yield ev;
        }
        if (done) {
          const ev = parse(buf.replace(/\r$/, ''));
          if (ev) yield ev;
          return;
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  // ---- conversation ----
  async function startConversation(lead) {
    let token = visitor();
    for (let attempt = 0; ; attempt++) {
      try {
        const d = await api('POST', '/conversations', Object.assign({ visitor_token: token }, lead || {}));
        saveConv({ id: d.conversation_id, token: d.token });
        if (lead) store.set('lead', d.conversation_id);
        absorb(d, false);
        // A live-chat-only bot acknowledges the new conversation.
        if (d.auto_reply) addMessage({ role: 'agent', text: d.auto_reply, status: 'complete' });
        return;
      } catch (e) {
        if (e.code !== 'CONVERSATION_EXISTS' || attempt) throw e;
        token = newVisitor();
      }
    }
  }

  function forget() {
    saveConv(null);
    store.set('lead', null);
  }

  // Adds messages not seen yet; counts them as unread while the chat is hidden.
  function absorb(d, live) {
    if (d.status) setStatus(d.status, d);
    if ('messages' in d) {
      const who = d.agent_typing;
      el.typing.textContent = who ? who + ' is typing…' : '';
      el.typing.hidden = !who;
    }
    let fresh = 0;
    let handoff = false;
    for (const m of d.messages || []) {
      if (m.created_at) {
        const t = Date.parse(m.created_at);
        if (t > lastSeenMs || (t === lastSeenMs && m.created_at > lastSeen)) {
          lastSeen = m.created_at;
          lastSeenMs = t;
        }
      }
      if (!m.id || seen.has(m.id) || adopt(m)) continue;
      addMessage(Object.assign({ status: 'complete' }, m));
      if (m.role !== 'user') fresh++;
      if (m.role === 'assistant' && m.unanswered) handoff = true;
    }
    if (seen.size) el.prompts.hidden = true;
    if (live && fresh && !open) {
      unread += fresh;
      post({ type: 'parley:unread', count: unread });
    }
    if (handoff && live) offerLead();
  }

  // A stored message from a failed send is already on screen: link it to its row.
  function adopt(m) {
    const i = orphans.findIndex((o) => o.role === m.role && (m.role === 'user' ? o.text === m.text : m.status === 'failed'));
    if (i < 0) return false;
    seen.set(m.id, orphans[i].row);
    orphans.splice(i, 1);
    return true;
  }

  function confirm(row, id) {
    row._m.id = id;
    row.dataset.id = id;
    seen.set(id, row);
  }

  function setStatus(s, d) {
    const was = status;
    status = s;
    el.banner.hidden = s !== 'escalated';
    el.human.hidden = !conv || s === 'escalated';
    if (s === 'escalated' && was !== 'escalated') offerLead();
    if (s === 'closed' && was !== 'closed') offerRating(d);
    if (s !== 'closed' && ratingForm) {
      ratingForm.remove();
      ratingForm = null;
    }
  }

  // After a person closes the conversation: a 1-5 rating with a comment.
  let ratingForm = null;
  function offerRating(d) {
    if (!cfg || !cfg.satisfaction_survey || !conv || ratingForm) return;
    if ((d && d.satisfaction) || store.get('rated') === conv.id) return;
    const form = mk('form', null, 'lead rating');
    form.noValidate = true;
    form.append(mk('h2', 'How did we do?'));
    const err = mk('p', null, 'err');
    err.hidden = true;
    const stars = mk('div', null, 'stars');
    stars.setAttribute('role', 'group');
    stars.setAttribute('aria-label', 'Rate this conversation from 1 (bad) to 5 (great)');
    let score = 0;
    for (let i = 1; i <= 5; i++) {
      const b = mk('button', String(i), 'star');
      b.type = 'button';
      b.setAttribute('aria-label', i + ' of 5');
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('click', () => {
        score = i;
        err.hidden = true;
        for (const x of stars.children) x.setAttribute('aria-pressed', String(Number(x.textContent) === i));
      });
      stars.append(b);
    }
    const note = mk('textarea');
    note.maxLength = 2000;
    note.rows = 2;
    note.placeholder = 'Anything to add? (optional)';
    note.setAttribute('aria-label', 'Comment');
    const submit = mk('button', 'Send rating', 'primary');
    submit.type = 'submit';
    const actions = mk('div', null, 'actions');
    actions.append(submit);
    form.append(stars, note, err, actions);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      if (!score) {
        err.textContent = 'Choose a rating from 1 to 5.';
        err.hidden = false;
        return;
      }
      submit.disabled = true;
      try {
        await api('POST', '/conversations/' + conv.id + '/satisfaction', { score, comment: note.value.trim() || undefined });
        store.set('rated', conv.id);
        form.replaceWith(mk('p', 'Thanks for your rating!', 'thanks'));
        ratingForm = null;
      } catch (e) {
        err.textContent = explain(e);
        err.hidden = false;
        submit.disabled = false;
      }
    });
    ratingForm = form;
    el.extra.append(form);
    scrollEnd();
  }

  async function send(text, file, again, reuse) {
    text = text.trim() || (file ? file.name : '');
    if (!text || busy) return;
    busy = true;
    const mine = ++sendSeq;
    const ep = epoch;
    el.send.disabled = true;
    el.prompts.hidden = true;
    notice('');
    const user = reuse || addMessage({ role: 'user', text, status: 'complete', attachments: [] });
    const bot = addMessage({ role: 'assistant', text: '', status: 'pending', sources: [] });
    const retry = () => {
      bot.remove();
      send(text, file, false, user);
    };
    try {
      if (!conv) await startConversation();
      if (ep !== epoch) return;
      const done = await ask(text, bot, ep);
      if (ep !== epoch) return;
      if (done.user_message_id) confirm(user, done.user_message_id);
      if (done.message_id) {
        bot._m.id = done.message_id;
        bot._m.status = 'complete';
        bot._m.unanswered = !!done.unanswered;
        seen.set(done.message_id, bot);
        fill(bot);
      } else bot.remove();
      if (done.escalated) setStatus('escalated');
      if (done.unanswered) offerLead();
      if (file && done.user_message_id) await upload(file, user);
    } catch (e) {
      if (ep !== epoch) return;
      if (e.code === 'CONVERSATION_NOT_FOUND' || (e.status === 401 && conv)) {
        forget();
        if (!again) {
          bot.remove();
          busy = false;
          return send(text, file, true, user);
        }
      }
      orphans.push({ role: 'user', text, row: user }, { role: 'assistant', row: bot });
      bot._m.status = 'failed';
      bot._m.error = explain(e);
      bot._m.retry = retry;
      fill(bot);
    } finally {
      if (ep === epoch && mine === sendSeq) {
        busy = false;
        el.send.disabled = false;
      }
    }
  }

  async function ask(text, row, ep) {
    const m = row._m;
    const res = await api('POST', '/conversations/' + conv.id + '/messages', { text, stream: cfg.streaming !== false }, true);
    if (!/event-stream/i.test(res.headers.get('Content-Type') || '')) {
      const d = await res.json();
      m.text = d.answer || '';
      m.sources = d.sources || [];
      return d;
    }
    let done = null;
    for await (const ev of events(res.body)) {
      if (ep !== epoch) break;
      if (ev.data === '[DONE]') break;
      let d;
      try {
        d = JSON.parse(ev.data);
      } catch (_) {
        continue;
      }
      const type = d.type || ev.event;
      if (type === 'delta') {
        m.text += d.text || '';
        // One render of the bubble a delta; no files or rating while streaming.
        row.dataset.status = m.status = 'streaming';
        renderBody(row);
        if (el.scroll.scrollHeight - el.scroll.scrollTop - el.scroll.clientHeight < 160) scrollEnd();
      } else if (type === 'sources') {
        m.sources = d.sources || [];
        fill(row);
      } else if (type === 'done') {
        done = d;
      } else if (type === 'error') {
        throw failure(0, d);
      }
    }
    if (!done) throw Object.assign(new Error('The answer was interrupted. Please try again.'), { details: [] });
    return done;
  }

  async function upload(file, row) {
    const data = new FormData();
    data.append('file', file, file.name);
    try {
      const a = await api('POST', '/conversations/' + conv.id + '/messages/' + encodeURIComponent(row._m.id) + '/attachments', data);
      row._m.attachments = (row._m.attachments || []).concat(a);
      files(row);
    } catch (e) {
      notice('The file was not sent: ' + explain(e));
    }
  }

  async function loadHistory() {
    try {
      const d = await api('GET', '/conversations/' + conv.id + '/messages');
      absorb(d, false);
    } catch (e) {
      if (e.status === 404 || e.status === 401) forget();
      else notice(explain(e));
    }
  }

  function schedulePoll(delay) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, delay != null ? delay : open ? 2000 : 10000);
  }

  async function poll() {
    if (polling) return;
    if (conv && !busy) {
      polling = true;
      const seq = sendSeq;
      const ep = epoch;
      try {
        const q = lastSeen ? '?after=' + encodeURIComponent(lastSeen) : '';
        const d = await api('GET', '/conversations/' + conv.id + '/messages' + q);
        if (seq === sendSeq && ep === epoch && !busy) absorb(d, true);
      } catch (e) {
        if (ep === epoch && (e.status === 404 || e.status === 401)) forget();
      }
      polling = false;
    }
    schedulePoll();
  }

  // ---- lead forms ----
  function buildLeadForm(heading, submitText, onSubmit, onDismiss) {
    const form = mk('form', null, 'lead');
    form.noValidate = true;
    const h = mk('h2', heading);
    h.id = 'lead-h';
    form.setAttribute('aria-labelledby', 'lead-h');
    form.append(h);
    let fields = (cfg.lead_capture && cfg.lead_capture.fields) || [];
    if (!fields.length) fields = [{ key: 'email', label: 'Email', type: 'email', required: true }];
    const inputs = {};
    const errors = {};
    for (const f of fields) {
      const id = 'lead-' + f.key;
      const wrap = mk('div', null, 'field');
      const label = mk('label', f.label || f.key);
      label.htmlFor = id;
      if (!f.required) label.append(mk('span', ' (optional)', 'opt'));
      const input = mk('input');
      input.id = id;
      input.name = f.key;
      input.type = f.type === 'email' ? 'email' : f.type === 'phone' ? 'tel' : 'text';
      input.autocomplete = { name: 'name', email: 'email', phone: 'tel' }[f.key] || 'on';
      input.required = !!f.required;
      input.maxLength = 320;
      const err = mk('p', null, 'err');
      err.id = id + '-err';
      err.hidden = true;
      input.setAttribute('aria-describedby', err.id);
      wrap.append(label, input, err);
      form.append(wrap);
      inputs[f.key] = input;
      errors[f.key] = err;
    }
    const general = mk('p', null, 'err');
    general.hidden = true;
    const actions = mk('div', null, 'actions');
    const submit = mk('button', submitText, 'primary');
    submit.type = 'submit';
    actions.append(submit);
    if (onDismiss) {
      const skip = mk('button', 'No thanks', 'link');
      skip.type = 'button';
      skip.addEventListener('click', onDismiss);
      actions.append(skip);
    }
    form.append(general, actions);

    const show = (key, text) => {
      const target = errors[key] || general;
      target.textContent = text;
      target.hidden = false;
      if (inputs[key]) inputs[key].setAttribute('aria-invalid', 'true');
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      for (const k in errors) {
        errors[k].hidden = true;
        inputs[k].removeAttribute('aria-invalid');
      }
      general.hidden = true;
      const body = {};
      let bad = null;
      for (const f of fields) {
        const v = inputs[f.key].value.trim();
        if (!v) {
          if (f.required) show(f.key, (f.label || f.key) + ' is required.');
        } else if (f.type === 'email' && !EMAIL.test(v)) show(f.key, 'Enter a valid email address.');
        else if (['name', 'email', 'phone'].includes(f.key)) body[f.key] = v;
        else (body.fields = body.fields || {})[f.key] = v;
        if (!bad && inputs[f.key].hasAttribute('aria-invalid')) bad = inputs[f.key];
      }
      if (bad) return bad.focus();
      submit.disabled = true;
      try {
        await onSubmit(body);
      } catch (e) {
        let placed = false;
        for (const d of e.details || []) {
          const key = String(d.field || '').replace(/^fields\./, '');
          if (errors[key]) {
            show(key, d.message);
            placed = true;
          }
        }
        if (!placed) show('', explain(e));
        const first = form.querySelector('[aria-invalid=true]');
        if (first) first.focus();
      }
      submit.disabled = false;
    });
    return form;
  }

  function showBeforeChat() {
    el.form.hidden = true;
    el.prompts.hidden = true;
    leadForm = buildLeadForm('Before we start, tell us how to reach you', 'Start chat', async (body) => {
      await startConversation(body);
      leadForm.remove();
      leadForm = null;
      el.form.hidden = false;
      el.prompts.hidden = !el.prompts.childElementCount || seen.size > 0;
      el.input.focus();
    });
    el.extra.append(leadForm);
  }

  function offerLead() {
    const mode = cfg && cfg.lead_capture && cfg.lead_capture.mode;
    if (mode !== 'on_handoff' || leadForm || !conv || store.get('lead') === conv.id) return;
    const done = (text) => {
      leadForm.remove();
      leadForm = null;
      if (text) el.extra.append(mk('p', text, 'thanks'));
    };
    leadForm = buildLeadForm(
      'Leave your email and we will reply',
      'Send',
      async (body) => {
        await api('POST', '/conversations/' + conv.id + '/lead', body);
        store.set('lead', conv.id);
        done(body.email ? 'Thanks! We will reply to ' + body.email + '.' : 'Thanks! We will be in touch.');
      },
      () => {
        store.set('lead', conv.id);
        done('');
      },
    );
    el.extra.append(leadForm);
    scrollEnd();
  }

  // ---- chrome ----
  function setAccent(hex) {
    if (!/^#(?:[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i.test(hex || '')) hex = '#3A82FF';
    let c = hex.slice(1);
    c = c.length < 6 ? c.slice(0, 3).replace(/./g, '$&$&') : c.slice(0, 6);
    const lum = (rgb) => {
      const [r, g, b] = rgb.map((x) => ((x /= 255) <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4)));
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const rgb = [0, 2, 4].map((i) => parseInt(c.slice(i, i + 2), 16));
    let strong = rgb;
    while (1.05 / (lum(strong) + 0.05) < 4.6) strong = strong.map((x) => Math.floor(x * 0.9));
    const s = document.documentElement.style;
    s.setProperty('--accent', '#' + c);
    s.setProperty('--on-accent', 1.05 / (lum(rgb) + 0.05) >= 3 ? '#fff' : '#111827');
    s.setProperty('--accent-strong', 'rgb(' + strong.join(',') + ')');
  }

  function renderWelcome() {
    el.log.textContent = '';
    el.extra.textContent = '';
    if (cfg.welcome_message) {
      const row = addMessage({ role: 'assistant', text: cfg.welcome_message, status: 'complete', welcome: true });
      row.dataset.welcome = 'true';
    }
    el.prompts.hidden = !el.prompts.childElementCount;
  }

  function applyConfig() {
    document.documentElement.lang = cfg.language || 'en';
    document.title = cfg.title || cfg.name || 'Chat';
    el.title.textContent = cfg.title || cfg.name || 'Chat';
    setAccent(params.get('accent') || cfg.accent_color);
    // The bot's picture, or the first letter of its title.
    const avatar = safeUrl(cfg.avatar_url);
    const initial = mk('span', (el.title.textContent.trim()[0] || '?').toUpperCase(), 'initial');
    if (avatar) {
      const img = mk('img');
      img.alt = '';
      img.src = avatar;
      img.addEventListener('error', () => img.replaceWith(initial));
      el.avatar.append(img);
    } else el.avatar.append(initial);
    el.avatar.hidden = false;
    for (const p of cfg.quick_prompts || []) {
      const b = mk('button', p, 'prompt');
      b.type = 'button';
      b.addEventListener('click', () => send(p));
      el.prompts.append(b);
    }
  }

  function restart() {
    epoch++;
    busy = false;
    el.send.disabled = false;
    forget();
    newVisitor();
    seen.clear();
    orphans = [];
    lastSeen = '';
    lastSeenMs = 0;
    unread = 0;
    leadForm = null;
    setStatus('open');
    notice('');
    renderWelcome();
    el.form.hidden = false;
    if (cfg.lead_capture && cfg.lead_capture.mode === 'before_chat') showBeforeChat();
    focusFirst();
  }

  function focusFirst() {
    const target = leadForm && el.form.hidden ? leadForm.querySelector('input') : el.input;
    if (target) target.focus({ preventScroll: true });
  }

  function setOpen(v) {
    open = v;
    if (open) {
      unread = 0;
      post({ type: 'parley:unread', count: 0 });
      scrollEnd();
      requestAnimationFrame(() => open && focusFirst());
    } else if (document.hasFocus()) post({ type: 'parley:close' });
    schedulePoll(open ? 300 : undefined);
  }

  function setFile(f) {
    pendingFile = f || null;
    el.fileBox.hidden = !pendingFile;
    el.fileName.textContent = pendingFile ? pendingFile.name : '';
    if (!pendingFile) el.fileInput.value = '';
  }

  function wire() {
    el.form.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = el.input.value;
      if ((!text.trim() && !pendingFile) || busy) return;
      const file = pendingFile;
      el.input.value = '';
      grow();
      setFile(null);
      send(text, file);
    });
    const grow = () => {
      el.input.style.height = 'auto';
      el.input.style.height = Math.min(el.input.scrollHeight, 120) + 'px';
    };
    el.input.addEventListener('input', grow);
    // The team sees the visitor typing (at most one signal every 3 s).
    let typedAt = 0;
    el.input.addEventListener('input', () => {
      const now = Date.now();
      if (!conv || now - typedAt < 3000 || !el.input.value.trim()) return;
      typedAt = now;
      api('POST', '/conversations/' + conv.id + '/typing').catch(() => {});
    });
    el.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        el.form.requestSubmit();
      }
    });
    el.fileInput.addEventListener('change', () => setFile(el.fileInput.files[0]));
    $('file-x').addEventListener('click', () => {
      setFile(null);
      el.input.focus();
    });
    $('restart').addEventListener('click', restart);
    $('close').addEventListener('click', () => post({ type: 'parley:close' }));
    el.human.addEventListener('click', async () => {
      if (!conv) return;
      try {
        absorb(await api('POST', '/conversations/' + conv.id + '/escalate'), false);
        setStatus('escalated');
      } catch (e) {
        notice(explain(e));
      }
    });
    document.addEventListener('keydown', (e) => {
      if ((e.key === 'Escape' || e.key === 'Esc') && embedded) post({ type: 'parley:close' });
    });
    addEventListener('message', (e) => {
      if (!embedded || e.source !== window.parent || e.origin !== parentOrigin) return;
      if (e.data && e.data.type === 'parley:visibility') setOpen(e.data.open === true);
    });
  }

  async function boot() {
    $('close').hidden = !embedded;
    wire();
    try {
      cfg = await api('GET', '/config');
    } catch (e) {
      el.boot.textContent = explain(e);
      post({ type: 'parley:ready' });
      return;
    }
    applyConfig();
    const id = store.get('conversation_id');
    const token = store.get('conversation_token');
    conv = id && token ? { id, token } : null;
    renderWelcome();
    if (conv) await loadHistory();
    if (conv) post({ type: 'parley:active', active: true });
    else if (cfg.lead_capture && cfg.lead_capture.mode === 'before_chat') showBeforeChat();
    setStatus(status);
    el.app.hidden = false;
    el.boot.hidden = true;
    post({ type: 'parley:ready' });
    if (open) focusFirst();
    scrollEnd();
    schedulePoll();
  }

  boot();
})();
