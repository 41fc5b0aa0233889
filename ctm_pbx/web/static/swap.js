/*! ctm-pbx swap.js: <script async src="https://CTM/swap.js" data-ctm-api=URL data-ctm-cookieless
data-ctm-consent=required data-ctm-antiflicker=ms> (or window.ctmConfig={api,cookieless,...});
[data-ctm-noswap]; window.CTM={ready,numbers(),rescan(),consent(bool)}; event ctm:swapped */
(()=>{
const W=window,D=document,H=D.documentElement,L=location,K='ctm_vid';if(W.CTM)return;
const me=D.currentScript||D.querySelector('script[src*="swap.js"]')||H,C=W.ctmConfig||{},
opt=k=>k in C?C[k]:me.getAttribute('data-ctm-'+k),
api=(opt('api')||new URL(me.src||'/',L).origin+'').replace(/\/+$/,''),
nc=![null,void 0,!1].includes(opt('cookieless')),af=+opt('antiflicker'),
NO='script,style,noscript,textarea,select,template,[data-ctm-noswap]',
IN=/^(A|ABBR|BDI|CITE|CODE|DATA|EM|FONT|KBD|LABEL|MARK|NOBR|SMALL|SPAN|STRONG|SUB|SUP|TIME|[BIQSU])$/,
seen={},store=()=>W[nc?'sessionStorage':'localStorage'],
cookie=v=>nc||(D.cookie=K+'='+v+';path=/;SameSite=Lax;max-age='+(v?31536000:0)),
numbers=()=>Object.assign({},map);
let hits=0,ok=opt('consent')!='required',vid,idx,map={},src=null,hiding,mo,css,done,timer,due,every,started;
const ready=new Promise(r=>done=r),
// digits as written: intl, national, +44 (0)20.., 0044..
forms=e=>{const t=e.replace(/\D/g,''),c=/^[17]/.test(t)?1:/^(2[07]|3[0-469]|4[013-9]|5[1-8]|6[0-6]|8[1246]|9[0-58])/.test(t)?2:3,n=t.slice(c);
return t[0]==1?[t,n]:[t,n,(t[0]==7?8:0)+n,t.slice(0,c)+0+n,'00'+t]},
apply=(s,ed,o='',a=0)=>{for(const[p,r]of ed)o+=s.slice(a,p)+r,a=p+1;return o+s.slice(a)};
// a target's digit groups get the tracking digits rank by rank; hiding: any 7+
function find(s){const g=[],out=[],re=/\d+/g;let m,i,j,a,hit,to,gap;
while(m=re.exec(s))g.push(m);
for(i=0;i<g.length;i++){
for(a='',hit=0,j=i;j<g.length&&a.length<18;j++){
if(j>i&&(gap=s.slice(g[j-1].index+g[j-1][0].length,g[j].index),!/^[\s().\-/\u2010-\u2015]+$/.test(gap)||gap.replace(/\s+/g,' ').length>3))break;
a+=g[j][0];if(to=idx?idx[a]:a.length>6&&a)hit=[j,to]}
if(!hit)continue;[j,to]=hit;const pos=[];
for(;i<=j;i++)for(let c=0;c<g[i][0].length;)pos.push(g[i].index+c++);
hits++;pos.map((p,q)=>out.push([p,q<pos.length-1?to[q]||'':to.slice(q)]));i=j}
return out}
// a block's text nodes as one string
function run(nodes){let s='',k=0;const at=nodes.map(n=>(s+=n.data).length-n.data.length),per=nodes.map(()=>[]);
for(const[p,r]of find(s)){while(at[k+1]<=p)k++;per[k].push([p-at[k],r])}
per.forEach((ed,k)=>{const n=nodes[k],t=apply(n.data,ed);if(ed[0])idx?t!=n.data&&(n.data=t):n.parentNode.setAttribute('data-ctm-h','')})}
function scan(root){let nodes=[];const flush=()=>{if(nodes[0])run(nodes);nodes=[]};
(function walk(el){const h=idx&&el.tagName=='A'&&el.getAttribute('href')||'',ed=/^tel:/i.test(h)&&find(h);
if(ed[0])el.setAttribute('href',apply(h,ed));
for(let n=el.firstChild;n;n=n.nextSibling)
if(n.nodeType==3)nodes.push(n);else if(n.nodeType!=1);else if(n.matches(NO))flush();else if(IN.test(n.tagName))walk(n);else flush(),walk(n),flush()})(root);
flush()}
function pass(roots){let count=hits;for(const r of roots||[H])scan(r);count=hits-count;
if(mo)mo.takeRecords();
if(idx&&(count||!roots))D.dispatchEvent(new CustomEvent('ctm:swapped',{detail:{source:src,numbers:numbers(),count}}));
return count}
function watch(){mo=mo||new MutationObserver(recs=>{if(!idx&&!hiding)return;const set=new Set;
for(const r of recs)for(let n of r.type=='childList'?r.addedNodes:[r.target]){
if(n.nodeType!=1)n=n.parentNode;while(n&&n!=H&&IN.test(n.tagName))n=n.parentNode;
if(n&&n.isConnected&&!n.closest(NO))set.add(n)}
const roots=[...set].filter(r=>{while(r=r.parentNode)if(set.has(r))return;return 1});
if(roots[0])pass(roots)});
mo.observe(H,{childList:!0,subtree:!0,characterData:!0,attributeFilter:['href']})}
function reveal(){if(hiding){hiding=0;css.remove();
for(const e of D.querySelectorAll('[data-ctm-h]'))e.removeAttribute('data-ctm-h')}}
// string body: text/plain, no CORS preflight
async function call(path){const body={visitor_id:load()};
if(path=='visit')Object.assign(body,{landing_url:L.href,referrer:D.referrer,page:L.pathname});
try{const r=await fetch(api+'/api/'+path,{method:'POST',body:JSON.stringify(body)}),j=await r.json();
if(!r.ok||!j.numbers)throw 0;got(j)}
catch(e){if(path=='renew'&&ok)return call('visit');reveal();done(null);if(idx)schedule()}}
function load(){try{vid=vid||store().getItem(K)}catch(e){}
const m=!vid&&!nc&&D.cookie.match(/(^|; )ctm_vid=([^;]+)/);return vid=m?decodeURIComponent(m[2]):vid||null}
function got(j){if(!ok)return;
if(vid=j.visitor_id||vid){try{store().setItem(K,vid)}catch(e){}cookie(encodeURIComponent(vid))}
src=j.source||null;map={};idx={};
for(const t in j.numbers){const v=j.numbers[t],to=(v||0).number||v;if(typeof to=='string')map[t]=to}
// a target's earlier numbers go too, unless shown now; targets first
const now=Object.values(map);
for(const t in map){const to=map[t],s=seen[t]=seen[t]||[t],f=forms(to);if(!s.includes(to))s.push(to);
for(const x of s)if(!now.includes(x))forms(x).forEach((y,i)=>idx[y]=x!=t&&idx[y]||f[i]||f[0])}
watch();pass();reveal();done(numbers());every=Math.max(+j.renew_every_s||60,.25)*1e3;schedule()}
function schedule(){clearTimeout(timer);if(due=ok&&Date.now()+every)timer=setTimeout(tick,every)}
function tick(){if(D.visibilityState!='hidden'&&due)due=0,call('renew')}
D.addEventListener('visibilitychange',()=>due&&Date.now()>=due&&tick());
function start(){if(!started)started=1,watch(),call('visit')}
W.CTM={ready,numbers,rescan:()=>idx?pass():0,
consent(yes){if(ok=yes)return start();started=due=vid=0;clearTimeout(timer);
try{store().removeItem(K)}catch(e){}cookie('')}};
// anti-flicker
if(ok&&af){hiding=1;css=D.createElement('style');css.textContent='[data-ctm-h]{visibility:hidden!important}';
(D.head||H).appendChild(css);watch();pass();setTimeout(reveal,af)}
if(ok)start()})();
