import { createRoot } from 'react-dom/client';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { App } from './App';
import { storeToken, storedToken, takeTokenFromUrl } from './auth';

// Read `?token=` before anything else and drop it from the address bar (history.replaceState).
const fromUrl = takeTokenFromUrl();
if (fromUrl) storeToken(fromUrl);

const root = document.getElementById('root');
if (root) createRoot(root).render(<App initialToken={fromUrl ?? storedToken()} />);
