import { BASE, Layout } from './layout.js';

export function LoginPage(props: { csrf: string; next: string; error: string | null }) {
  return (
    <Layout title="Sign in" section="none" session={null}>
      <form class="login" method="post" action={`${BASE}/login`}>
        <h1>Sign in to Shoal</h1>
        {props.error ? (
          <p class="flash error" role="alert" id="login-error">
            {props.error}
          </p>
        ) : null}
        <input type="hidden" name="_csrf" value={props.csrf} />
        <input type="hidden" name="next" value={props.next} />
        <label for="token">Operator token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="current-password"
          required
          aria-describedby={props.error ? 'login-error token-help' : 'token-help'}
          aria-invalid={props.error ? 'true' : undefined}
        />
        <p id="token-help" class="muted">
          The token from <code>shoal token create</code> or the controller's <code>admin-token</code> file.
        </p>
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
    </Layout>
  );
}
