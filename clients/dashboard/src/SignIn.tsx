import { useState, type FormEvent } from 'react';

export function SignIn({ onSignIn, error }: { onSignIn: (token: string) => void; error: string | null }) {
  const [value, setValue] = useState('');
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const token = value.trim();
    if (token) onSignIn(token);
  };
  return (
    <div className="signin-page">
      <form className="signin" onSubmit={submit} data-testid="signin-form">
        <h1>Switchboard</h1>
        <p>
          Paste a token to open the dashboard. The embedded <code>switchboard</code> prints a dashboard URL with
          one (<code>/?token=…</code>) when it starts.
        </p>
        {error && <p className="error" data-testid="signin-error">{error}</p>}
        <label htmlFor="token">Token</label>
        <textarea id="token" data-testid="signin-token" rows={4} value={value} onChange={(e) => setValue(e.target.value)} spellCheck={false} autoComplete="off" />
        <button type="submit" data-testid="signin-submit" disabled={!value.trim()}>Sign in</button>
        <p className="hint">The token is kept in this tab only (sessionStorage) and sent to this gateway.</p>
      </form>
    </div>
  );
}
