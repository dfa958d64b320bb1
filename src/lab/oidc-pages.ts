// The lab provider's two interaction pages (sign-in, consent), modelled on Authelia's portal:
// a username/password form, then a consent screen listing scopes. Plain HTML forms so tests
// can drive them with fetch; every interpolated value is HTML-escaped.

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head><body><h1>${escape(
    title,
  )}</h1>${body}</body></html>`;
}

export function loginPage(uid: string, clientId: string, error?: string): string {
  const problem = error === undefined ? '' : `<p role="alert">${escape(error)}</p>`;
  return page(
    'Castellan lab sign-in',
    `<p>Client <code>${escape(clientId)}</code> asks you to sign in.</p>${problem}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Username <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>`,
  );
}

export function consentPage(uid: string, clientId: string, scopes: readonly string[], resources: readonly string[]): string {
  const list = (items: readonly string[]) => items.map((item) => `<li>${escape(item)}</li>`).join('');
  return page(
    'Castellan lab consent',
    `<p>Client <code>${escape(clientId)}</code> requests:</p><ul>${list(scopes)}</ul>
<p>for resources:</p><ul>${list(resources)}</ul>
<form method="post" action="/interaction/${escape(uid)}/confirm"><button type="submit">Accept</button></form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit">Deny</button></form>`,
  );
}

/** RP-initiated logout confirmation (oidc-provider's default page loads web fonts; this one is local). */
export function logoutPage(host: string, form: string): string {
  return page(
    'Castellan lab sign-out',
    `<p>Sign out of the lab provider at <code>${escape(host)}</code>?</p>${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`,
  );
}

export function signedOutPage(): string {
  return page('Castellan lab sign-out', '<p>You are signed out of the lab provider.</p>');
}

/** Device flow, step 1: type the code the terminal shows (`form` is the provider's, with its xsrf). */
export function deviceCodePage(form: string, error?: string): string {
  const problem = error === undefined ? '<p>Enter the code that <code>castellan login --device</code> printed.</p>' : `<p role="alert">${escape(error)}</p>`;
  return page('Castellan lab device sign-in', `${problem}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
}

/** Device flow, step 2: the person checks that the code is the one on their terminal. */
export function deviceConfirmPage(form: string, clientId: string, userCode: string): string {
  return page(
    'Castellan lab device sign-in',
    `<p>Client <code>${escape(clientId)}</code> wants to sign in on a device showing the code</p><p><code>${escape(userCode)}</code></p>
<p>Continue only if your terminal shows exactly this code.</p>${form}
<button type="submit" form="op.deviceConfirmForm">Continue</button>
<button type="submit" form="op.deviceConfirmForm" value="yes" name="abort">Abort</button>`,
  );
}

export function deviceDonePage(): string {
  return page('Castellan lab device sign-in', '<p>Signed in. Return to your terminal: it has its token now.</p>');
}
